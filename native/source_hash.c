// The hash of the sources this build came from (native/source-hash.mjs, passed in by binding.gyp), kept as a
// string in the binary so that a test can read it out of a prebuild of any architecture without loading it.
#ifndef NFS_SOURCE_HASH
#define NFS_SOURCE_HASH "unknown"
#endif

__attribute__((used, visibility("default")))
const char nfs_native_source_hash[] = "nfs-native-source-sha256:" NFS_SOURCE_HASH;
