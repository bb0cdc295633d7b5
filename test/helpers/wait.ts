// Waiting for something that will happen: poll `fn` until it holds, or fail naming `what` after `timeoutMs`. One
// helper for every test (several files had their own copy). A test that must show that something does NOT happen
// waits for an event that comes after it, or moves time by hand (manual-timers.ts), never sleeps.

export async function waitFor (what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, stepMs))
  }
}
