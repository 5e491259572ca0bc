/**
 * The record of array paths that the SQL documents drivers keep per collection: every key path at which a
 * stored document has ever held an array, array positions left out (`{a: [{b: [1]}]}` holds arrays at `a`
 * and `a.b`). A filter on a path outside the record needs no "or an array containing it" arm (see
 * `FilterContext.neverArray`). The record never shrinks: a path stays after its last array is gone,
 * which costs only the arm it could have saved.
 *
 * @module
 */
import type { JsonValue } from '../../ports/common.js';

/**
 * The record's key of a key path: its JSON text, so that any key (even one holding a `.`) has one spelling.
 * The empty string is never a path's key; the drivers use it to mark a record as complete.
 */
export function arrayPathKey(path: readonly string[]): string {
  return JSON.stringify(path);
}

/** The record's row saying it covers every document (the drivers write it after reading the older ones). */
export const RECORD_COMPLETE = '';

/**
 * The keys ({@link arrayPathKey}) of the paths at which `doc` holds an array, those in `known` left out
 * (usually empty: most writes add no new array path).
 */
export function newArrayPaths(doc: JsonValue, known: ReadonlySet<string>): string[] {
  const found = new Set<string>();
  walk(doc, [], found);
  const fresh: string[] = [];
  for (const key of found) if (!known.has(key)) fresh.push(key);
  return fresh;
}

function walk(value: JsonValue, path: string[], found: Set<string>): void {
  if (Array.isArray(value)) {
    found.add(arrayPathKey(path));
    // An element (even an array in an array) sits at the array's own key path.
    for (const element of value) if (typeof element === 'object' && element !== null) walk(element, path, found);
  } else if (typeof value === 'object' && value !== null) {
    for (const key of Object.keys(value)) {
      const child = value[key];
      if (typeof child === 'object' && child !== null) {
        path.push(key);
        walk(child, path, found);
        path.pop();
      }
    }
  }
}
