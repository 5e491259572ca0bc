/**
 * The JSON text of validated document data, remembered so that drivers storing text need not serialise a
 * document a second time.
 *
 * @module
 */
import type { JsonObject } from '../../ports/common.js';

const SERIALIZED = new WeakMap<object, string>();

/** Remembers that `copy` (a fresh `JSON.parse` of `text`, never changed afterwards) serialises to `text`. */
export function rememberJson(copy: JsonObject, text: string): void {
  SERIALIZED.set(copy, text);
}

/**
 * The JSON text of document data: the text it was parsed from when core validated it (`JSON.stringify` of
 * that copy gives the same text), else `JSON.stringify`.
 */
export function documentJson(data: JsonObject): string {
  return SERIALIZED.get(data) ?? JSON.stringify(data);
}
