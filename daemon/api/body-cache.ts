// Serialised bodies of the large read-only answers (GET /secrets, /secrets/resolve), kept as Buffers per key and
// store revision. A list of 1,000 secrets is ~190 KB of JSON: building that string per request (a fresh large
// V8 string, its UTF-8 copy, then a page-sized munmap when the GC frees them) was most of the daemon's time per
// request, and the bodies only change when the store does. The cache holds bodies, never decisions: access checks
// run on every request before a body is looked up, and the key names exactly what the body was built from.
import { createHash } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'

export interface CachedBody {
  body: Buffer
  /** strong validator: a digest of the bytes, so it stays right across daemon restarts (revisions restart at 0) */
  etag: string
}

interface Entry extends CachedBody {
  revision: number
  /** when it was last asked for (the cache's own counter): the least recent goes first */
  used: number
}

export const DEFAULT_BODY_CACHE_ENTRIES = 8

/** A small LRU of serialised bodies; an entry is good only for the store revision it was built at. */
export class BodyCache {
  readonly #entries = new Map<string, Entry>()
  readonly #limit: number
  #fills = 0
  #uses = 0

  constructor (limit = DEFAULT_BODY_CACHE_ENTRIES) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('a body cache needs room for at least one entry')
    this.#limit = limit
  }

  /**
   * The body for `key` at `revision`, built by `fill` when missing or stale. Callers read the revision and
   * call `fill` in the same synchronous turn, so the body always matches the revision it is filed under.
   */
  get (key: string, revision: number, fill: () => string | Buffer | ArrayBuffer): CachedBody {
    const hit = this.#entries.get(key)
    // A hit only bumps its counter: moving it to the end of the Map (delete, then set) on every request was the
    // daemon's costliest line of its own on GET /secrets/resolve (issue 18). The few entries are scanned on a fill.
    if (hit !== undefined && hit.revision === revision) {
      hit.used = ++this.#uses
      return hit
    }
    const built = fill()
    const body = typeof built === 'string' ? Buffer.from(built, 'utf8') : Buffer.isBuffer(built) ? built : Buffer.from(built)
    const entry: Entry = { body, etag: etagOf(body), revision, used: ++this.#uses }
    this.#fills++
    this.#entries.set(key, entry)
    if (this.#entries.size > this.#limit) this.#evictLeastRecent()
    return entry
  }

  #evictLeastRecent (): void {
    let oldest: string | null = null
    let least = Infinity
    for (const [key, e] of this.#entries) {
      if (e.used < least) { least = e.used; oldest = key }
    }
    if (oldest !== null) this.#entries.delete(oldest)
  }

  /** entries held and bodies built so far: for tests and metrics */
  stats (): { entries: number, fills: number } {
    return { entries: this.#entries.size, fills: this.#fills }
  }
}

export function etagOf (body: Buffer): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
}

/** RFC 9110 If-None-Match: `*`, or a list of entity tags compared weakly (a W/ prefix does not matter for GET). */
export function etagMatches (header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  return header.split(',').some(raw => {
    const tag = raw.trim()
    return tag === '*' || (tag.startsWith('W/') ? tag.slice(2) : tag) === etag
  })
}

/** Answer with a cached body (or 304 when the client already holds it). */
export function sendCached (request: FastifyRequest, reply: FastifyReply, cached: CachedBody): FastifyReply {
  // no-cache: a client may keep the body but must ask again each time; the answer depends on who asks.
  reply.header('etag', cached.etag).header('cache-control', 'private, no-cache')
  if (etagMatches(request.headers['if-none-match'], cached.etag)) return reply.code(304).send()
  return reply.type('application/json; charset=utf-8').send(cached.body)
}
