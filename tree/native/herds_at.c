/*
 * The file calls Node lacks, for the node's local trees (tree/local.ts):
 * mknod (fifos and sockets), extended attributes without following a link,
 * rename with flags (RENAME_NOREPLACE, RENAME_EXCHANGE), and record locks of
 * an open file description (lock, flock: below), and O_NONBLOCK for a
 * terminal job's master side (nonblock). Each path call takes the
 * path local.ts built inside a folder it opened beneath the root
 * (/proc/self/fd/N/name), so what was checked is what is used. Each runs on
 * Node's thread pool and settles a promise: with the result, or with the
 * errno number, which JavaScript names. No judgement here: which modes,
 * which attribute names and which flags are allowed is decided in TypeScript.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <node_api.h>
#ifdef __linux__
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Bounds, as the kernel's: a path, an attribute's name, its value, a list of names. */
#define MAX_PATH 8192
#define MAX_NAME 256
#define MAX_VALUE (64 * 1024)

enum call { CALL_MKNOD, CALL_GETXATTR, CALL_SETXATTR, CALL_LISTXATTR, CALL_REMOVEXATTR, CALL_RENAME, CALL_UTIMENS };

struct work {
  enum call call;
  napi_async_work async;
  napi_deferred deferred;
  char path[MAX_PATH];
  char path2[MAX_PATH];
  char name[MAX_NAME];
  unsigned mode;
  int flags;
  char *value;       /* set: the value given; get/list: the buffer filled */
  size_t size;       /* its size */
  ssize_t result;    /* bytes read, or 0 */
  int error;         /* errno, or 0 */
  struct timespec times[2]; /* utimens: access, modification (UTIME_OMIT: left as it is) */
};

/* ---- on the thread pool: one system call, no JavaScript ---- */

static ssize_t get_xattr (struct work *w) {
#ifdef __APPLE__
  return getxattr(w->path, w->name, w->value, w->size, 0, XATTR_NOFOLLOW);
#else
  return lgetxattr(w->path, w->name, w->value, w->size);
#endif
}

/* flags: 1 create, 2 replace (Linux's values; macOS numbers them 2 and 4, and 1 is XATTR_NOFOLLOW). */
static ssize_t set_xattr (struct work *w) {
#ifdef __APPLE__
  int flags = (w->flags & 1 ? XATTR_CREATE : 0) | (w->flags & 2 ? XATTR_REPLACE : 0);
  return setxattr(w->path, w->name, w->value, w->size, 0, flags | XATTR_NOFOLLOW);
#else
  return lsetxattr(w->path, w->name, w->value, w->size, w->flags);
#endif
}

static ssize_t list_xattr (struct work *w) {
#ifdef __APPLE__
  return listxattr(w->path, w->value, w->size, XATTR_NOFOLLOW);
#else
  return llistxattr(w->path, w->value, w->size);
#endif
}

static ssize_t remove_xattr (struct work *w) {
#ifdef __APPLE__
  return removexattr(w->path, w->name, XATTR_NOFOLLOW);
#else
  return lremovexattr(w->path, w->name);
#endif
}

/* flags: 1 no replace, 2 exchange (Linux's values; macOS spells them RENAME_EXCL and RENAME_SWAP). */
static ssize_t rename_flags (struct work *w) {
#ifdef __APPLE__
  unsigned flags = (w->flags & 1 ? RENAME_EXCL : 0) | (w->flags & 2 ? RENAME_SWAP : 0);
  return renameatx_np(AT_FDCWD, w->path, AT_FDCWD, w->path2, flags);
#else
  return syscall(SYS_renameat2, AT_FDCWD, w->path, AT_FDCWD, w->path2, (unsigned)w->flags);
#endif
}

static void execute (napi_env env, void *data) {
  (void)env;
  struct work *w = data;
  ssize_t r = -1;
  switch (w->call) {
    case CALL_MKNOD: r = mknod(w->path, (mode_t)w->mode, 0); break;
    case CALL_GETXATTR: r = get_xattr(w); break;
    case CALL_SETXATTR: r = set_xattr(w); break;
    case CALL_LISTXATTR: r = list_xattr(w); break;
    case CALL_REMOVEXATTR: r = remove_xattr(w); break;
    case CALL_RENAME: r = rename_flags(w); break;
    case CALL_UTIMENS: r = utimensat(AT_FDCWD, w->path, w->times, AT_SYMLINK_NOFOLLOW); break;
  }
  w->result = r < 0 ? 0 : r;
  w->error = r < 0 ? errno : 0;
}

/* ---- on the JavaScript thread ---- */

/* Settles the promise: a Buffer for get/list (the bytes read, or an empty one when only the size was asked: then its length is in `size`), else undefined. */
static void complete (napi_env env, napi_status status, void *data) {
  struct work *w = data;
  napi_value value;
  if (status != napi_ok || w->error) {
    napi_value code, message;
    napi_create_string_utf8(env, "herds_at", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &value);
    napi_create_int32(env, status != napi_ok ? ECANCELED : w->error, &code);
    napi_set_named_property(env, value, "errno", code);
    napi_reject_deferred(env, w->deferred, value);
  } else if (w->call == CALL_GETXATTR || w->call == CALL_LISTXATTR) {
    if (w->size == 0) {
      napi_create_double(env, (double)w->result, &value);
    } else {
      void *copy;
      napi_create_buffer_copy(env, (size_t)w->result, w->value, &copy, &value);
    }
    napi_resolve_deferred(env, w->deferred, value);
  } else {
    napi_get_undefined(env, &value);
    napi_resolve_deferred(env, w->deferred, value);
  }
  napi_delete_async_work(env, w->async);
  free(w->value);
  free(w);
}

/*
 * Copies a JavaScript string into `out`; false (and a thrown TypeError) if it is
 * not a string, is too long or holds a NUL. Its whole length is asked first: a
 * copy that does not fit stops before a character, short of the end, and must
 * not pass for the whole string.
 */
static bool get_string (napi_env env, napi_value v, char *out, size_t cap) {
  size_t len = 0, copied = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len >= cap ||
      napi_get_value_string_utf8(env, v, out, cap, &copied) != napi_ok || copied != len || strlen(out) != len) {
    napi_throw_type_error(env, NULL, "herds_at: a path or name is not a string, too long, or holds a NUL");
    return false;
  }
  return true;
}

static double get_number (napi_env env, napi_value v) {
  double d = -1;
  napi_get_value_double(env, v, &d);
  return d;
}

/*
 * utimens' times: a Float64Array [atime s, ns, mtime s, ns], whole numbers, ns
 * from 0 to 999999999, or -1 for UTIME_OMIT; false (and a thrown error) otherwise.
 */
static bool get_times (napi_env env, napi_value v, struct timespec *times) {
  napi_typedarray_type type;
  size_t n = 0, off;
  double *a = NULL;
  napi_value ab;
  bool ok = v && napi_get_typedarray_info(env, v, &type, &n, (void **)&a, &ab, &off) == napi_ok && type == napi_float64_array && n == 4;
  for (int i = 0; ok && i < 2; i++) {
    double sec = a[2 * i], nsec = a[2 * i + 1];
    ok = sec >= -9007199254740991.0 && sec <= 9007199254740991.0 && sec == (double)(long long)sec &&
         nsec >= -1 && nsec <= 999999999 && nsec == (double)(long)nsec;
    if (ok) { times[i].tv_sec = (time_t)sec; times[i].tv_nsec = nsec < 0 ? UTIME_OMIT : (long)nsec; }
  }
  if (!ok) napi_throw_range_error(env, NULL, "herds_at: utimens needs a Float64Array [s, ns, s, ns] (ns -1: left as it is)");
  return ok;
}

/* Queues `w` and returns its promise. */
static napi_value start (napi_env env, struct work *w) {
  napi_value promise, name;
  napi_create_promise(env, &w->deferred, &promise);
  napi_create_string_utf8(env, "herds_at", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, w, &w->async);
  napi_queue_async_work(env, w->async);
  return promise;
}

/*
 * call(op, path, path2|name, number, value): one entry point, so the table of
 * calls is the enum above and JavaScript's mirror of it (tree/native.ts).
 *   mknod(path, "", mode)          getxattr(path, name, size)   listxattr(path, "", size)
 *   setxattr(path, name, flags, value)   removexattr(path, name)   rename(path, path2, flags)
 */
static napi_value js_call (napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) {
    napi_throw_type_error(env, NULL, "herds_at: call(op, path, second, number[, value])");
    return NULL;
  }
  double op = get_number(env, argv[0]), number = get_number(env, argv[3]);
  // Written so that NaN fails too, and only whole numbers pass: each is then converted exactly.
  if (!(op >= CALL_MKNOD && op <= CALL_UTIMENS && op == (double)(int)op) ||
      !(number >= 0 && number <= 0xffffffff && number == (double)(unsigned)number)) {
    napi_throw_range_error(env, NULL, "herds_at: no such call, or a number out of range");
    return NULL;
  }
  struct work *w = calloc(1, sizeof *w);
  if (!w) { napi_throw_error(env, NULL, "herds_at: out of memory"); return NULL; }
  w->call = (enum call)op;
  bool second_is_path = w->call == CALL_RENAME;
  if (!get_string(env, argv[1], w->path, sizeof w->path) ||
      !(second_is_path ? get_string(env, argv[2], w->path2, sizeof w->path2) : get_string(env, argv[2], w->name, sizeof w->name))) {
    free(w);
    return NULL;
  }
  if (w->call == CALL_MKNOD) w->mode = (unsigned)number;
  else w->flags = (int)(unsigned)number;
  if (w->call == CALL_GETXATTR || w->call == CALL_LISTXATTR) {
    w->size = number > MAX_VALUE ? MAX_VALUE : (size_t)number;
    w->flags = 0;
    if (w->size && !(w->value = malloc(w->size))) { free(w); napi_throw_error(env, NULL, "herds_at: out of memory"); return NULL; }
  }
  if (w->call == CALL_SETXATTR) {
    void *bytes = NULL;
    size_t len = 0;
    bool is_buffer = false;
    if (argc < 5 || napi_is_buffer(env, argv[4], &is_buffer) != napi_ok || !is_buffer ||
        napi_get_buffer_info(env, argv[4], &bytes, &len) != napi_ok || len > MAX_VALUE) {
      free(w);
      napi_throw_type_error(env, NULL, "herds_at: setxattr needs a Buffer of at most 64 KiB");
      return NULL;
    }
    w->size = len;
    if (len && !(w->value = malloc(len))) { free(w); napi_throw_error(env, NULL, "herds_at: out of memory"); return NULL; }
    if (len) memcpy(w->value, bytes, len);
  }
  if (w->call == CALL_UTIMENS && !get_times(env, argc < 5 ? NULL : argv[4], w->times)) {
    free(w);
    return NULL;
  }
  return start(env, w);
}

/* ---- locks: never waiting, so called on the JavaScript thread ---- */

/* Throws an Error whose errno is `error`, as the thread-pool calls reject with. */
static napi_value throw_errno (napi_env env, int error) {
  napi_value err, code, message;
  napi_create_string_utf8(env, "herds_at", NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &err);
  napi_create_int32(env, error, &code);
  napi_set_named_property(env, err, "errno", code);
  napi_throw(env, err);
  return NULL;
}

/* Reads `argc` numbers, each a whole number from `min` to 2^53; false (and a thrown RangeError) otherwise. */
static bool get_numbers (napi_env env, napi_callback_info info, size_t want, double *out, double min) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "herds_at: too few arguments");
    return false;
  }
  for (size_t i = 0; i < want; i++) {
    double d = get_number(env, argv[i]);
    if (!(d >= min && d <= 9007199254740992.0) || d != (double)(long long)d) {
      napi_throw_range_error(env, NULL, "herds_at: a number out of range");
      return false;
    }
    out[i] = d;
  }
  return true;
}

/*
 * lock(fd, cmd, type, start, length): an open file description's record lock
 * (Linux's OFD locks: held by the description, not the process, so each lock
 * owner of the mount gets its own, and they meet the node's own processes'
 * fcntl locks). cmd 0 tests (F_OFD_GETLK), 1 sets (F_OFD_SETLK, EAGAIN if
 * held elsewhere: JavaScript retries for a waiting lock). type 0 read,
 * 1 write, 2 unlock; length 0 is to the end. Test answers [type, start,
 * length, pid] of a lock in the way (type 2 if none); set answers undefined.
 */
static napi_value js_lock (napi_env env, napi_callback_info info) {
  double a[5];
  if (!get_numbers(env, info, 5, a, 0)) return NULL;
  if (a[0] > 0x7fffffff || a[1] > 1 || a[2] > 2) { napi_throw_range_error(env, NULL, "herds_at: lock(fd, cmd 0-1, type 0-2, start, length)"); return NULL; }
#ifdef F_OFD_SETLK
  static const short types[] = { F_RDLCK, F_WRLCK, F_UNLCK };
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = types[(int)a[2]];
  fl.l_whence = SEEK_SET;
  fl.l_start = (off_t)a[3];
  fl.l_len = (off_t)a[4];
  if (fcntl((int)a[0], a[1] == 0 ? F_OFD_GETLK : F_OFD_SETLK, &fl) < 0) return throw_errno(env, errno);
  napi_value value;
  if (a[1] == 1) { napi_get_undefined(env, &value); return value; }
  double out[4] = { fl.l_type == F_RDLCK ? 0 : fl.l_type == F_WRLCK ? 1 : 2, (double)fl.l_start, (double)fl.l_len, fl.l_pid > 0 ? fl.l_pid : 0 };
  napi_create_array_with_length(env, 4, &value);
  for (uint32_t i = 0; i < 4; i++) {
    napi_value n;
    napi_create_double(env, out[i], &n);
    napi_set_element(env, value, i, n);
  }
  return value;
#else
  return throw_errno(env, ENOLCK); /* no locks held by a description here (macOS): the node cannot tell one mount's owners apart */
#endif
}

/* flock(fd, op): flock(2) without waiting; op 0 shared, 1 exclusive, 2 unlock (EWOULDBLOCK if held elsewhere). */
static napi_value js_flock (napi_env env, napi_callback_info info) {
  double a[2];
  if (!get_numbers(env, info, 2, a, 0)) return NULL;
  if (a[0] > 0x7fffffff || a[1] > 2) { napi_throw_range_error(env, NULL, "herds_at: flock(fd, op 0-2)"); return NULL; }
  static const int ops[] = { LOCK_SH, LOCK_EX, LOCK_UN };
  if (flock((int)a[0], ops[(int)a[1]] | LOCK_NB) < 0) return throw_errno(env, errno);
  napi_value value;
  napi_get_undefined(env, &value);
  return value;
}

/*
 * beneath(root, rel): the folder `rel` inside the folder `root`, opened as an
 * O_PATH descriptor with openat2(RESOLVE_BENEATH): the kernel walks it in one
 * call and fails (EXDEV) if any step, a link's target or a "..", leads out of
 * root. Path resolution only, no I/O, so it is called on the JavaScript
 * thread: a walk on the thread pool costs two hand-offs per folder. ENOSYS
 * where there is no openat2 (macOS, old kernels, some seccomp filters):
 * JavaScript walks instead.
 */
static napi_value js_beneath (napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char root[MAX_PATH], rel[MAX_PATH];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "herds_at: beneath(root, rel)");
    return NULL;
  }
  if (!get_string(env, argv[0], root, sizeof root) || !get_string(env, argv[1], rel, sizeof rel)) return NULL;
#if defined(__linux__) && defined(SYS_openat2)
  int dir = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return throw_errno(env, errno);
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  long fd = -1;
  /* EAGAIN: a rename raced a ".." on the way; the kernel asks for the walk again. */
  for (int tries = 0; tries < 16; tries++) {
    fd = syscall(SYS_openat2, dir, rel[0] ? rel : ".", &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) break;
  }
  int error = errno;
  close(dir);
  if (fd < 0) return throw_errno(env, error);
  napi_value value;
  napi_create_int32(env, (int32_t)fd, &value);
  return value;
#else
  return throw_errno(env, ENOSYS);
#endif
}

/*
 * nonblock(fd): sets O_NONBLOCK on a descriptor. A terminal job's master
 * side comes from node-pty in blocking mode, so a write to a terminal whose
 * program reads nothing would stop the node's one thread; non-blocking, the
 * write says EAGAIN and JavaScript keeps the rest (bounded) for later.
 */
static napi_value js_nonblock (napi_env env, napi_callback_info info) {
  double a[1];
  if (!get_numbers(env, info, 1, a, 0)) return NULL;
  if (a[0] > 0x7fffffff) { napi_throw_range_error(env, NULL, "herds_at: nonblock(fd)"); return NULL; }
  int flags = fcntl((int)a[0], F_GETFL);
  if (flags < 0 || fcntl((int)a[0], F_SETFL, flags | O_NONBLOCK) < 0) return throw_errno(env, errno);
  napi_value value;
  napi_get_undefined(env, &value);
  return value;
}

static napi_value init (napi_env env, napi_value exports) {
  static const struct { const char *name; napi_callback fn; } fns[] = { { "call", js_call }, { "lock", js_lock }, { "flock", js_flock }, { "beneath", js_beneath }, { "nonblock", js_nonblock } };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
