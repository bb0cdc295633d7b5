// nfs_native: the few libc calls Node does not expose.
//   peercred(fd)                  SO_PEERCRED of a connected Unix socket: who is calling, from the kernel.
//   getpwuid(uid) / getpwnam(n)   the passwd entry through NSS, so LDAP and sssd users resolve too.
//   getgrouplist(name, gid)       every group of a user (NSS), not only the primary one.
//   getgrgid(gid) / getgrnam(n)   the group entry through NSS.
//   cloexec(fd)                   set FD_CLOEXEC on one fd (node-pty's pty master lacks it).
//   cloexecFrom(lowfd)            set FD_CLOEXEC on every open fd >= lowfd: close_range(2), else a /proc/self/fd scan.
//   lockExclusive(fd)             a non-blocking exclusive fcntl lock on a whole open file (OFD, else POSIX):
//                                 true when taken, false when another process holds it. NFS carries it to the
//                                 server (NLM or NFSv4 locks), unlike flock on older kernels; it goes with the fd.
// Every function returns null for "no such entry" and throws only on a real failure.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <grp.h>
#include <node_api.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define CALL(env, expr)                                                        \
  do {                                                                         \
    if ((expr) != napi_ok) {                                                   \
      napi_throw_error((env), "NFS_ERR_NATIVE", "N-API call failed: " #expr);  \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s: %s", what, strerror(err));
  napi_throw_error(env, "NFS_ERR_NATIVE", buf);
  return NULL;
}

static int arg_u32(napi_env env, napi_callback_info info, size_t idx, uint32_t *out) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc <= idx) return -1;
  return napi_get_value_uint32(env, argv[idx], out) == napi_ok ? 0 : -1;
}

static int arg_str(napi_env env, napi_callback_info info, size_t idx, char *buf, size_t len) {
  size_t argc = 2, got = 0;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc <= idx) return -1;
  return napi_get_value_string_utf8(env, argv[idx], buf, len, &got) == napi_ok ? 0 : -1;
}

static napi_value set_u32(napi_env env, napi_value obj, const char *key, uint32_t v) {
  napi_value n;
  if (napi_create_uint32(env, v, &n) != napi_ok) return NULL;
  if (napi_set_named_property(env, obj, key, n) != napi_ok) return NULL;
  return obj;
}

static napi_value set_str(napi_env env, napi_value obj, const char *key, const char *v) {
  napi_value s;
  if (napi_create_string_utf8(env, v ? v : "", NAPI_AUTO_LENGTH, &s) != napi_ok) return NULL;
  if (napi_set_named_property(env, obj, key, s) != napi_ok) return NULL;
  return obj;
}

static napi_value Peercred(napi_env env, napi_callback_info info) {
  uint32_t fd;
  if (arg_u32(env, info, 0, &fd) != 0) {
    napi_throw_type_error(env, "NFS_ERR_NATIVE", "peercred(fd): fd must be a number");
    return NULL;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt((int)fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  napi_value obj;
  CALL(env, napi_create_object(env, &obj));
  if (!set_u32(env, obj, "pid", (uint32_t)cred.pid) || !set_u32(env, obj, "uid", cred.uid) || !set_u32(env, obj, "gid", cred.gid)) return NULL;
  return obj;
}

static napi_value passwd_object(napi_env env, struct passwd *pw) {
  napi_value obj;
  CALL(env, napi_create_object(env, &obj));
  if (!set_str(env, obj, "name", pw->pw_name) || !set_u32(env, obj, "uid", pw->pw_uid) || !set_u32(env, obj, "gid", pw->pw_gid) ||
      !set_str(env, obj, "home", pw->pw_dir) || !set_str(env, obj, "shell", pw->pw_shell)) return NULL;
  return obj;
}

static napi_value lookup_passwd(napi_env env, int by_uid, uid_t uid, const char *name) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  if (size < 16384) size = 16384;
  for (;;) {
    char *buf = malloc((size_t)size);
    if (!buf) return throw_errno(env, "malloc", ENOMEM);
    struct passwd pw, *res = NULL;
    int rc = by_uid ? getpwuid_r(uid, &pw, buf, (size_t)size, &res) : getpwnam_r(name, &pw, buf, (size_t)size, &res);
    if (rc == ERANGE && size < (1 << 24)) { free(buf); size *= 2; continue; }
    napi_value out;
    if (rc != 0 && rc != ENOENT && rc != ESRCH) { free(buf); return throw_errno(env, "getpw*_r", rc); }
    if (!res) { free(buf); CALL(env, napi_get_null(env, &out)); return out; }
    out = passwd_object(env, res);
    free(buf);
    return out;
  }
}

static napi_value Getpwuid(napi_env env, napi_callback_info info) {
  uint32_t uid;
  if (arg_u32(env, info, 0, &uid) != 0) { napi_throw_type_error(env, "NFS_ERR_NATIVE", "getpwuid(uid)"); return NULL; }
  return lookup_passwd(env, 1, (uid_t)uid, NULL);
}

static napi_value Getpwnam(napi_env env, napi_callback_info info) {
  char name[256];
  if (arg_str(env, info, 0, name, sizeof name) != 0) { napi_throw_type_error(env, "NFS_ERR_NATIVE", "getpwnam(name)"); return NULL; }
  return lookup_passwd(env, 0, 0, name);
}

static napi_value group_object(napi_env env, struct group *gr) {
  napi_value obj, members;
  CALL(env, napi_create_object(env, &obj));
  if (!set_str(env, obj, "name", gr->gr_name) || !set_u32(env, obj, "gid", gr->gr_gid)) return NULL;
  CALL(env, napi_create_array(env, &members));
  uint32_t i = 0;
  for (char **m = gr->gr_mem; m && *m; m++, i++) {
    napi_value s;
    CALL(env, napi_create_string_utf8(env, *m, NAPI_AUTO_LENGTH, &s));
    CALL(env, napi_set_element(env, members, i, s));
  }
  CALL(env, napi_set_named_property(env, obj, "members", members));
  return obj;
}

static napi_value lookup_group(napi_env env, int by_gid, gid_t gid, const char *name) {
  long size = sysconf(_SC_GETGR_R_SIZE_MAX);
  if (size < 16384) size = 16384;
  for (;;) {
    char *buf = malloc((size_t)size);
    if (!buf) return throw_errno(env, "malloc", ENOMEM);
    struct group gr, *res = NULL;
    int rc = by_gid ? getgrgid_r(gid, &gr, buf, (size_t)size, &res) : getgrnam_r(name, &gr, buf, (size_t)size, &res);
    if (rc == ERANGE && size < (1 << 24)) { free(buf); size *= 2; continue; }
    napi_value out;
    if (rc != 0 && rc != ENOENT && rc != ESRCH) { free(buf); return throw_errno(env, "getgr*_r", rc); }
    if (!res) { free(buf); CALL(env, napi_get_null(env, &out)); return out; }
    out = group_object(env, res);
    free(buf);
    return out;
  }
}

static napi_value Getgrgid(napi_env env, napi_callback_info info) {
  uint32_t gid;
  if (arg_u32(env, info, 0, &gid) != 0) { napi_throw_type_error(env, "NFS_ERR_NATIVE", "getgrgid(gid)"); return NULL; }
  return lookup_group(env, 1, (gid_t)gid, NULL);
}

static napi_value Getgrnam(napi_env env, napi_callback_info info) {
  char name[256];
  if (arg_str(env, info, 0, name, sizeof name) != 0) { napi_throw_type_error(env, "NFS_ERR_NATIVE", "getgrnam(name)"); return NULL; }
  return lookup_group(env, 0, 0, name);
}

static napi_value Getgrouplist(napi_env env, napi_callback_info info) {
  char name[256];
  uint32_t gid;
  if (arg_str(env, info, 0, name, sizeof name) != 0 || arg_u32(env, info, 1, &gid) != 0) {
    napi_throw_type_error(env, "NFS_ERR_NATIVE", "getgrouplist(name, gid)");
    return NULL;
  }
  int n = 64;
  gid_t *groups = NULL;
  for (int tries = 0; tries < 8; tries++) {
    gid_t *next = realloc(groups, sizeof(gid_t) * (size_t)n);
    if (!next) { free(groups); return throw_errno(env, "realloc", ENOMEM); }
    groups = next;
    int want = n;
    if (getgrouplist(name, (gid_t)gid, groups, &want) >= 0) { n = want; break; }
    n = want > n ? want : n * 2;
    if (tries == 7) { free(groups); return throw_errno(env, "getgrouplist", ERANGE); }
  }
  napi_value arr;
  if (napi_create_array_with_length(env, (size_t)n, &arr) != napi_ok) { free(groups); return NULL; }
  for (int i = 0; i < n; i++) {
    napi_value v;
    if (napi_create_uint32(env, groups[i], &v) != napi_ok || napi_set_element(env, arr, (uint32_t)i, v) != napi_ok) { free(groups); return NULL; }
  }
  free(groups);
  return arr;
}

static int set_cloexec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return -1;
  return (flags & FD_CLOEXEC) ? 0 : fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

static napi_value Cloexec(napi_env env, napi_callback_info info) {
  uint32_t fd;
  if (arg_u32(env, info, 0, &fd) != 0) { napi_throw_type_error(env, "NFS_ERR_NATIVE", "cloexec(fd)"); return NULL; }
  if (set_cloexec((int)fd) != 0) return throw_errno(env, "fcntl(FD_CLOEXEC)", errno);
  napi_value out;
  CALL(env, napi_get_undefined(env, &out));
  return out;
}

// The syscall number is 436 on every architecture (the unified table since Linux 5.9); headers may be older.
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static napi_value CloexecFrom(napi_env env, napi_callback_info info) {
  uint32_t low;
  if (arg_u32(env, info, 0, &low) != 0) { napi_throw_type_error(env, "NFS_ERR_NATIVE", "cloexecFrom(lowfd)"); return NULL; }
  napi_value out;
  CALL(env, napi_get_undefined(env, &out));
  // Linux >= 5.11: one call. Older kernels (RHEL 8 is 4.18) answer ENOSYS or EINVAL: scan /proc/self/fd instead.
  if (syscall(SYS_close_range, low, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return out;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return throw_errno(env, "opendir(/proc/self/fd)", errno);
  int self = dirfd(d), err = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    long fd = strtol(e->d_name, &end, 10);
    if (*end != '\0' || end == e->d_name || fd < (long)low || fd == self) continue;
    if (set_cloexec((int)fd) != 0 && errno != EBADF) err = errno;
  }
  closedir(d);
  if (err != 0) return throw_errno(env, "fcntl(FD_CLOEXEC)", err);
  return out;
}

static napi_value LockExclusive(napi_env env, napi_callback_info info) {
  uint32_t fd;
  if (arg_u32(env, info, 0, &fd) != 0) {
    napi_throw_type_error(env, "NFS_ERR_NATIVE", "lockExclusive(fd): fd must be a number");
    return NULL;
  }
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET; // l_start = l_len = 0: the whole file, however long it grows
  // An open-file-description lock belongs to the fd, not to the process: no other close() in the process drops it.
  int rc = fcntl((int)fd, F_OFD_SETLK, &fl);
  if (rc != 0 && errno == EINVAL) {
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    rc = fcntl((int)fd, F_SETLK, &fl);
  }
  napi_value result;
  if (rc == 0) {
    CALL(env, napi_get_boolean(env, true, &result));
    return result;
  }
  if (errno == EAGAIN || errno == EACCES) {
    CALL(env, napi_get_boolean(env, false, &result));
    return result;
  }
  return throw_errno(env, "fcntl(F_SETLK)", errno);
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"peercred", NULL, Peercred, NULL, NULL, NULL, napi_enumerable, NULL},
    {"getpwuid", NULL, Getpwuid, NULL, NULL, NULL, napi_enumerable, NULL},
    {"getpwnam", NULL, Getpwnam, NULL, NULL, NULL, napi_enumerable, NULL},
    {"getgrgid", NULL, Getgrgid, NULL, NULL, NULL, napi_enumerable, NULL},
    {"getgrnam", NULL, Getgrnam, NULL, NULL, NULL, napi_enumerable, NULL},
    {"getgrouplist", NULL, Getgrouplist, NULL, NULL, NULL, napi_enumerable, NULL},
    {"cloexec", NULL, Cloexec, NULL, NULL, NULL, napi_enumerable, NULL},
    {"cloexecFrom", NULL, CloexecFrom, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lockExclusive", NULL, LockExclusive, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
