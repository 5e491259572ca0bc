/** The part of write-file-atomic (a benchmark peer; it ships no types) that the benchmarks use. */
declare module 'write-file-atomic' {
  /** Writes `data` to a temporary file, fsyncs it (unless `fsync: false`) and renames it over `path`. */
  export default function writeFileAtomic(path: string, data: string | Uint8Array, options?: { fsync?: boolean; mode?: number }): Promise<void>;
}
