// Types for source-hash.mjs, plain JS so that binding.gyp runs it with node alone during an install.
export function nativeSources (dir?: string): string[]
export function nativeSourceHash (dir?: string): string
