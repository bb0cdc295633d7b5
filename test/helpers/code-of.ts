// The error code a promise rejects with, or undefined when it resolves: for tests that compare codes in a table or
// need the code as a value (t.rejects covers the plain case).
export async function codeOf (p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}
