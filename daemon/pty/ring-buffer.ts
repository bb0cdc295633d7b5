// The recent output of a launched run, for replay on attach: the last `capacity` bytes, in order. Pure.

export class RingBuffer {
  readonly capacity: number
  readonly #buf: Buffer
  // next byte to write; once full, also the oldest byte
  #head = 0
  #size = 0

  constructor (capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer')
    this.capacity = capacity
    this.#buf = Buffer.alloc(capacity)
  }

  get size (): number {
    return this.#size
  }

  push (chunk: Buffer): void {
    // A chunk larger than the whole ring: only its tail can survive.
    const data = chunk.length > this.capacity ? chunk.subarray(chunk.length - this.capacity) : chunk
    const first = Math.min(data.length, this.capacity - this.#head)
    data.copy(this.#buf, this.#head, 0, first)
    if (first < data.length) data.copy(this.#buf, 0, first)
    this.#head = (this.#head + data.length) % this.capacity
    this.#size = Math.min(this.capacity, this.#size + data.length)
  }

  /** A copy of what is held, oldest byte first. */
  contents (): Buffer {
    if (this.#size < this.capacity) return Buffer.from(this.#buf.subarray(this.#head - this.#size, this.#head))
    return Buffer.concat([this.#buf.subarray(this.#head), this.#buf.subarray(0, this.#head)])
  }
}
