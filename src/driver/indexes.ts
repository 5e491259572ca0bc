/**
 * Comparing declared indexes, as every documents adapter does when a collection is opened again.
 *
 * @module
 */
import type { IndexSpec } from '../ports/documents.js';

/**
 * Whether two index definitions are the same: the same fields in the same order, and the same uniqueness.
 * (Names are compared by the caller, which finds the existing index by name.) An adapter's `ensureIndex`
 * returns at once when the index it finds is the same, and throws {@link indexDefinitionConflict} when not.
 */
export function sameIndex(a: Pick<Required<IndexSpec>, 'fields' | 'unique'>, b: Pick<Required<IndexSpec>, 'fields' | 'unique'>): boolean {
  return a.unique === b.unique && a.fields.length === b.fields.length && a.fields.every((field, i) => field === b.fields[i]);
}
