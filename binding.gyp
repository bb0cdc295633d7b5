{
  "targets": [
    {
      "target_name": "nfs_native",
      "sources": ["native/nfs_native.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
