{
  "targets": [
    {
      "target_name": "nfs_native",
      "sources": ["native/nfs_native.c", "native/source_hash.c"],
      "defines": ["NFS_SOURCE_HASH=\"<!(node native/source-hash.mjs)\""],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
