// Recognising our own write after its answer was lost. The etcd3 client tries a call again by itself when it fails
// with UNAVAILABLE, DEADLINE_EXCEEDED and the like (its default fault handling: four tries across members), and
// a transaction's answer can be lost after etcd applied it (a member killed mid-answer, a cut connection, a deadline
// passed while the write was being applied). The repeated try of a compare-and-swap then fails its compare against
// our own write, and the caller would answer a conflict ("run already exists", "secret exists") for what it just
// wrote. So such a transaction reads back, in its failure branch (the same round trip), the keys that only its own
// write can have left as they are, and a failed compare whose keys all read as expected is the write's success.
// Only what identifies the write is compared (bytes we sent that hold a fresh random nonce, our node's name on an
// owner key, our lease): nothing is parsed, and no value ever reaches a log or an error from here.
// When every try's answer is lost (the first committed, the repeats' failure branches lost too), the client gives up
// with UNAVAILABLE: the writer then reads the same keys once etcd answers again, within a short bound (afterLostAnswer),
// and a write found there is done; else the error stands, as a write that may not have happened.
import type { IOperation, IResponseOp, ITxnResponse, Namespace } from 'etcd3'
import { setTimeout as sleep } from 'node:timers/promises'

/** How long a write whose every try failed waits for etcd to answer its read-back (one unary call's deadline). */
export const LOST_ANSWER_WAIT_MS = 2000

/** One key as our write left it. `value`: the exact bytes we put (null: a key we deleted; undefined: not compared). */
export interface Written {
  key: string
  value?: string | null
  /** the lease we put it on */
  lease?: string
  /** its mod revision must still be this one (a key the write compared but did not change) */
  mod?: number
}

/** The failure branch's reads, one per key, in order. */
export function readBack (ns: Namespace, marks: Written[]): IOperation[] {
  return marks.map(m => ns.get(m.key))
}

/**
 * Whether a failed compare's answer shows our own write (the reads of `readBack`, in order): the mod revision to
 * wait for on the replica if so, else null. At least one mark must name bytes we put: a deleted key or a revision
 * alone says nothing about who wrote.
 */
export function ownWriteRevision (res: ITxnResponse, marks: Written[]): number | null {
  if (res.succeeded || !marks.some(m => typeof m.value === 'string')) return null
  let revision = 0
  for (const [i, m] of marks.entries()) {
    const kv = (res.responses[i] as IResponseOp | undefined)?.response_range?.kvs[0]
    if (m.value === null) {
      if (kv !== undefined) return null
      continue
    }
    if (kv === undefined) return null
    if (typeof m.value === 'string' && !kv.value.equals(Buffer.from(m.value))) return null
    if (m.lease !== undefined && String(kv.lease) !== m.lease) return null
    if (m.mod !== undefined && Number(kv.mod_revision) !== m.mod) return null
    revision = Math.max(revision, Number(kv.mod_revision))
  }
  return revision
}

/**
 * After a write's every try failed (the client gave up): read its marks again until etcd answers, for at most
 * `waitMs`, and judge them as the failure branch would. The mod revision of our write if it is there, else null (not
 * there, nothing to tell it by, or etcd did not answer in time: the caller keeps its error). The read is one
 * transaction whose compare never holds, so its failure branch reads every mark at one revision, exactly as the
 * write's own failure branch does, and ownWriteRevision judges it the same way.
 */
export async function afterLostAnswer (ns: Namespace, marks: Written[], waitMs = LOST_ANSWER_WAIT_MS): Promise<number | null> {
  if (!marks.some(m => typeof m.value === 'string')) return null
  const until = Date.now() + waitMs
  for (let pause = 50; ; pause = Math.min(pause * 2, 400)) {
    try {
      // The deadline covers the client's own tries too: the whole wait stays within `waitMs`.
      const res = await ns.if(marks[0]!.key, 'Version', '<', 0).else(...readBack(ns, marks)).options({ deadline: until }).commit()
      return ownWriteRevision(res, marks)
    } catch {
      // etcd does not answer yet (no quorum, members restarting): try again while the bound allows.
    }
    if (Date.now() + pause >= until) return null
    await sleep(pause)
  }
}
