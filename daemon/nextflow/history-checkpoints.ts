// Where the run monitor last counted a launch dir's history up to, so that its next scan reads only what follows
// (issue 18). The monitor needs a record's position among all of the file's records (a run's history mark), so it
// streamed the whole file on every arm and every look at a run: 17-32 ms a scan at 10,000 lines, which a scientist
// who launches from one project dir reaches in a year or two, and Nextflow never trims it.
//
// A checkpoint is a line start some way before the end (CHECKPOINT_LAG), the number of valid records before it, the
// bytes just before it (the guard: Nextflow rewrites the file in place when a run ends, and a line rewritten or
// removed before the checkpoint shifts them, so the file is then read whole again), and a Bloom filter of the
// runNames and sessionIds before it, so that a caller looking for one can tell when the part not read might hold it
// (and has it read whole). Kept only for a history no one but its user could have written (read-owned.ts
// `trusted`), in an LRU bounded by bytes. The Bloom filter is these 50 lines rather than a package: the npm ones bring
// hash and encoding libraries along for what two FNV hashes and a Uint32Array do here.
import { Buffer } from 'node:buffer'
import { LRUCache } from 'lru-cache'

/** How far behind the end a checkpoint sits: the records a scan always reads (a live run's line is among them). */
export const CHECKPOINT_LAG = 16 * 1024
/** Bytes before the checkpoint kept to tell the file was not rewritten ahead of it. */
export const GUARD_BYTES = 256
/** A shorter guard (a line start too near where a read began) is not taken: the next line start is. */
export const GUARD_MIN = 64
/** All checkpoints together, their filters and guards: a user's long histories cannot grow the daemon. */
export const CHECKPOINTS_MAX_BYTES = 4 * 1024 * 1024
/**
 * Records before a checkpoint, at most: a scan gathers two hashes a name until it reaches the checkpoint's line, and
 * a history is the user's to fill (64 MiB of its shortest valid lines are a million records). Past this, no checkpoint
 * is taken and the file is read whole each time, as before checkpoints (65,536 runs: decades of one launch dir).
 */
export const CHECKPOINT_RECORDS_MAX = 65_536

const BITS_PER_NAME = 12
const HASHES = 4

/** FNV-1a over UTF-16 code units, as an int32 (a small integer to V8). Pure. */
export function nameHash (s: string, seed: number): number {
  let h = seed
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 16777619)
  }
  return h | 0
}

const SEED_A = 0x811c9dc5 | 0
const SEED_B = 0x01000193

/** The two hashes a name is filed under (double hashing derives the rest). Pure. */
export function nameHashes (s: string): [number, number] {
  return [nameHash(s, SEED_A), nameHash(s, SEED_B) | 1]
}

/** A Bloom filter of names: `mayHold` is never false for a name added (about 0.6 % false positives when full). */
export class NameFilter {
  readonly #bits: Uint32Array
  readonly capacity: number
  #names = 0

  constructor (capacity: number, bits?: Uint32Array, names = 0) {
    this.capacity = capacity
    this.#bits = bits ?? new Uint32Array(Math.ceil(capacity * BITS_PER_NAME / 32))
    this.#names = names
  }

  get bytes (): number {
    return this.#bits.byteLength
  }

  get names (): number {
    return this.#names
  }

  /** Add names by their hashes (pairs, as nameHashes gives them); false when that would pass the capacity. */
  addHashes (pairs: readonly number[]): boolean {
    if (this.#names + pairs.length / 2 > this.capacity) return false
    for (let i = 0; i < pairs.length; i += 2) this.#set(pairs[i]!, pairs[i + 1]!)
    this.#names += pairs.length / 2
    return true
  }

  mayHold (name: string): boolean {
    const [a, b] = nameHashes(name)
    const m = this.#bits.length * 32
    for (let k = 0; k < HASHES; k++) {
      const bit = ((a + Math.imul(k, b)) >>> 0) % m
      if ((this.#bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false
    }
    return true
  }

  clone (): NameFilter {
    return new NameFilter(this.capacity, this.#bits.slice(), this.#names)
  }

  #set (a: number, b: number): void {
    const m = this.#bits.length * 32
    for (let k = 0; k < HASHES; k++) {
      const bit = ((a + Math.imul(k, b)) >>> 0) % m
      this.#bits[bit >>> 5]! |= 1 << (bit & 31)
    }
  }
}

export interface Checkpoint {
  /** the history file's identity when it was taken: another file at the path starts again from 0 */
  dev: number
  ino: number
  /** a line start */
  offset: number
  /** valid records before `offset` */
  count: number
  /** the GUARD_BYTES (or fewer, at least GUARD_MIN) before `offset` */
  guard: Buffer
  /** runNames and sessionIds of the records before `offset` */
  names: NameFilter
}

/**
 * Checkpoints by launch dir and user, least recently used first out once over their bytes (lru-cache: its maxSize
 * and sizeCalculation are this bound). One per daemon, made where the daemon is wired (daemon.ts) and handed to the
 * monitor's probes and the auto-runs.
 */
export type Checkpoints = LRUCache<string, Checkpoint>

export function createCheckpoints (maxBytes = CHECKPOINTS_MAX_BYTES): Checkpoints {
  return new LRUCache<string, Checkpoint>({ maxSize: maxBytes, sizeCalculation: cp => cp.names.bytes + cp.guard.length + 64 })
}
