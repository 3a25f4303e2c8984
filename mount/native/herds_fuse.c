/*
 * A thin binding of libfuse3's low-level API for Node (N-API, plain C).
 *
 * It is small and dumb on purpose: one thread reads requests from the kernel
 * and hands each to JavaScript through a thread-safe function; JavaScript
 * answers through reply*() calls, from its own thread, whenever it is ready.
 * Every decision (paths, inodes, caching, errors) is made in TypeScript
 * (mount/lowlevel.ts). Kernel notifications go through a second thread,
 * because an invalidation may wait on a request only JavaScript can answer.
 *
 * Requests are named to JavaScript by an id (slot and generation), never by
 * pointer, so a late or repeated reply finds nothing and does no harm.
 */
#define FUSE_USE_VERSION 312
#define _GNU_SOURCE
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __APPLE__
/* macOS names struct stat's times differently. */
#define st_atim st_atimespec
#define st_mtim st_mtimespec
#define st_ctim st_ctimespec
#endif

/* Requests in service at once; beyond it the kernel is told EAGAIN. */
#define MAX_SLOTS 65536
/* Bytes of written data waiting for JavaScript; beyond it the reader waits. */
#define MAX_QUEUED_BYTES (64u << 20)
/* Invalidations waiting for the kernel; beyond it notify*() returns false. */
#define MAX_NOTES 16384
/*
 * Wakes the loop thread from its read of /dev/fuse at unmount: a lazy unmount
 * does not end the connection while another mount namespace (a sandbox job's)
 * still holds the mount, so the read would wait for ever.
 */
#ifdef __linux__
#define WAKE_SIGNAL (SIGRTMIN + 7)
#else
#define WAKE_SIGNAL SIGUSR2
#endif

/* Numbers passed per request; see enum arg. */
#define NUMS 8

enum op {
  OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR,
  OP_UNLINK, OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE,
  OP_FLUSH, OP_RELEASE, OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR,
  OP_FSYNCDIR, OP_STATFS, OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR,
  OP_CREATE, OP_FALLOCATE, OP_READDIRPLUS, OP_INTERRUPT, OP_EXIT, OP_GETLK, OP_SETLK,
  OP_FLOCK,
};

struct msg {
  int op;
  double id;
  double num[NUMS];
  char *name, *name2;
  char *data;
  size_t size;
  uid_t uid;
  gid_t gid;
  pid_t pid;
};

struct note {
  int entry;
  fuse_ino_t ino;
  off_t off, len;
  char name[256];
  fuse_req_t req; /* answered (0, success) once the kernel dropped what it kept: replyAfterInval */
};

struct session {
  struct fuse_session *se;
  char *mountpoint;
  napi_threadsafe_function tsfn;
  pthread_t loop, notifier;
  int loop_started, notifier_started, destroyed;

  pthread_mutex_t lock;
  pthread_cond_t drained;
  fuse_req_t slots[MAX_SLOTS];
  uint32_t gens[MAX_SLOTS];
  uint32_t free_slots[MAX_SLOTS];
  uint32_t nfree;
  size_t queued_bytes;

  pthread_mutex_t nlock;
  pthread_cond_t nwake;
  struct note notes[MAX_NOTES];
  size_t nhead, ncount;
  int nstop;

  struct { unsigned max_write, max_readahead; } conn;
};

/* ---- request slots ---- */

static double take_slot (struct session *s, fuse_req_t req) {
  pthread_mutex_lock(&s->lock);
  if (s->nfree == 0) { pthread_mutex_unlock(&s->lock); return -1; }
  uint32_t slot = s->free_slots[--s->nfree];
  s->slots[slot] = req;
  uint32_t gen = ++s->gens[slot] & 0x1fffff;
  pthread_mutex_unlock(&s->lock);
  return (double)gen * MAX_SLOTS + slot;
}

/* Takes the request named by `id` out of its slot: the caller replies to it. */
static fuse_req_t claim (struct session *s, double id) {
  if (!(id >= 0) || id > 9007199254740991.0) return NULL;
  uint64_t n = (uint64_t)id;
  uint32_t slot = n % MAX_SLOTS, gen = (uint32_t)(n / MAX_SLOTS);
  fuse_req_t req = NULL;
  pthread_mutex_lock(&s->lock);
  if (s->slots[slot] && (s->gens[slot] & 0x1fffff) == gen) {
    req = s->slots[slot];
    s->slots[slot] = NULL;
    s->free_slots[s->nfree++] = slot;
  }
  pthread_mutex_unlock(&s->lock);
  return req;
}

/* ---- from the loop thread to JavaScript ---- */

static void post (struct session *s, struct msg *m) {
  if (m->size && m->data) {
    pthread_mutex_lock(&s->lock);
    while (s->queued_bytes > MAX_QUEUED_BYTES && !fuse_session_exited(s->se)) pthread_cond_wait(&s->drained, &s->lock);
    s->queued_bytes += m->size;
    pthread_mutex_unlock(&s->lock);
  }
  if (napi_call_threadsafe_function(s->tsfn, m, napi_tsfn_nonblocking) != napi_ok) {
    free(m->name); free(m->name2); free(m->data); free(m);
  }
}

static struct msg *new_msg (int op) {
  struct msg *m = calloc(1, sizeof *m);
  if (m) m->op = op;
  return m;
}

static void on_interrupt (fuse_req_t req, void *data) {
  struct session *s = fuse_req_userdata(req);
  struct msg *m = new_msg(OP_INTERRUPT);
  if (!m) return;
  memcpy(&m->id, &data, sizeof m->id);
  post(s, m);
}

/* Starts a request's message: its slot, its caller, and an interrupt hook. */
static struct msg *begin (fuse_req_t req, int op) {
  struct session *s = fuse_req_userdata(req);
  struct msg *m = new_msg(op);
  double id = m ? take_slot(s, req) : -1;
  if (id < 0) { free(m); fuse_reply_err(req, EAGAIN); return NULL; }
  m->id = id;
  const struct fuse_ctx *ctx = fuse_req_ctx(req);
  m->uid = ctx->uid; m->gid = ctx->gid; m->pid = ctx->pid;
  void *cookie;
  memcpy(&cookie, &id, sizeof cookie);
  fuse_req_interrupt_func(req, on_interrupt, cookie);
  return m;
}

static void send_req (fuse_req_t req, struct msg *m) {
  post(fuse_req_userdata(req), m);
}

#define BEGIN(op) struct msg *m = begin(req, op); if (!m) return
#define NAME(field, value) m->field = strdup(value)

static void ll_init (void *userdata, struct fuse_conn_info *conn) {
  struct session *s = userdata;
  conn->max_write = s->conn.max_write;
  conn->max_readahead = s->conn.max_readahead;
  conn->max_read = s->conn.max_write; /* as max_read= in the options */
  /* The node truncates on setattr; the mount never sees O_TRUNC at open. */
  conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
}

static void ll_lookup (fuse_req_t req, fuse_ino_t parent, const char *name) {
  BEGIN(OP_LOOKUP); m->num[0] = parent; NAME(name, name); send_req(req, m);
}

static void post_forget (struct session *s, fuse_ino_t ino, uint64_t n) {
  struct msg *m = new_msg(OP_FORGET);
  if (!m) return;
  m->num[0] = ino; m->num[1] = (double)n;
  post(s, m);
}

static void ll_forget (fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  post_forget(fuse_req_userdata(req), ino, nlookup);
  fuse_reply_none(req);
}

static void ll_forget_multi (fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  for (size_t i = 0; i < count; i++) post_forget(fuse_req_userdata(req), forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

static void ll_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_GETATTR); m->num[0] = ino; m->num[1] = fi ? (double)fi->fh : -1; send_req(req, m);
}


static void ll_setattr (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  BEGIN(OP_SETATTR);
  m->num[0] = ino; m->num[1] = fi ? (double)fi->fh : -1; m->num[2] = to_set;
  m->num[3] = attr->st_mode; m->num[4] = attr->st_uid; m->num[5] = attr->st_gid;
  m->num[6] = (double)attr->st_size;
  /* Times exactly, as seconds and nanoseconds; to_set's _NOW bits say "now". */
  double times[4] = { (double)attr->st_atim.tv_sec, (double)attr->st_atim.tv_nsec, (double)attr->st_mtim.tv_sec, (double)attr->st_mtim.tv_nsec };
  m->data = malloc(sizeof times);
  if (m->data) { memcpy(m->data, times, sizeof times); m->size = sizeof times; }
  send_req(req, m);
}

static void ll_readlink (fuse_req_t req, fuse_ino_t ino) {
  BEGIN(OP_READLINK); m->num[0] = ino; send_req(req, m);
}

static void ll_mknod (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  BEGIN(OP_MKNOD); m->num[0] = parent; m->num[1] = mode; m->num[2] = (double)rdev; NAME(name, name); send_req(req, m);
}

static void ll_mkdir (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  BEGIN(OP_MKDIR); m->num[0] = parent; m->num[1] = mode; NAME(name, name); send_req(req, m);
}

static void ll_unlink (fuse_req_t req, fuse_ino_t parent, const char *name) {
  BEGIN(OP_UNLINK); m->num[0] = parent; NAME(name, name); send_req(req, m);
}

static void ll_rmdir (fuse_req_t req, fuse_ino_t parent, const char *name) {
  BEGIN(OP_RMDIR); m->num[0] = parent; NAME(name, name); send_req(req, m);
}

static void ll_symlink (fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  BEGIN(OP_SYMLINK); m->num[0] = parent; NAME(name, name); NAME(name2, link); send_req(req, m);
}

static void ll_rename (fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags) {
  BEGIN(OP_RENAME); m->num[0] = parent; m->num[1] = newparent; m->num[2] = flags;
  NAME(name, name); NAME(name2, newname); send_req(req, m);
}

static void ll_link (fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  BEGIN(OP_LINK); m->num[0] = ino; m->num[1] = newparent; NAME(name, newname); send_req(req, m);
}

static void ll_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_OPEN); m->num[0] = ino; m->num[1] = fi->flags; send_req(req, m);
}

static void ll_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  BEGIN(OP_READ); m->num[0] = ino; m->num[1] = (double)fi->fh; m->num[2] = (double)size; m->num[3] = (double)off; send_req(req, m);
}

static void ll_write (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  struct msg *m = NULL;
  char *copy = malloc(size ? size : 1);
  if (!copy) { fuse_reply_err(req, ENOMEM); return; }
  m = begin(req, OP_WRITE);
  if (!m) { free(copy); return; }
  memcpy(copy, buf, size);
  m->num[0] = ino; m->num[1] = (double)fi->fh; m->num[3] = (double)off; m->num[4] = fi->flags;
  m->data = copy; m->size = size;
  send_req(req, m);
}

/* A lock owner (64 bits) as two 32-bit halves, which doubles carry exactly. */
#define OWNER(i, fi) (m->num[i] = (double)((fi)->lock_owner >> 32), m->num[(i) + 1] = (double)((fi)->lock_owner & 0xffffffffu))

/* Record lock types as JavaScript numbers them: 0 read, 1 write, 2 unlock (the platforms' values differ). */
static double lock_type (short type) {
  return type == F_RDLCK ? 0 : type == F_WRLCK ? 1 : 2;
}

static void ll_flush (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_FLUSH); m->num[0] = ino; m->num[1] = (double)fi->fh; OWNER(2, fi); send_req(req, m);
}

static void ll_getlk (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock) {
  BEGIN(OP_GETLK); m->num[0] = ino; m->num[1] = (double)fi->fh; OWNER(2, fi);
  m->num[4] = lock_type(lock->l_type); m->num[5] = (double)lock->l_start; m->num[6] = (double)lock->l_len; send_req(req, m);
}

static void ll_setlk (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock, int sleep) {
  BEGIN(OP_SETLK); m->num[0] = ino; m->num[1] = (double)fi->fh; OWNER(2, fi);
  m->num[4] = lock_type(lock->l_type); m->num[5] = (double)lock->l_start; m->num[6] = (double)lock->l_len; m->num[7] = sleep; send_req(req, m);
}

/* op: flock(2)'s LOCK_SH, LOCK_EX or LOCK_UN, with LOCK_NB: as 0 shared, 1 exclusive, 2 unlock, and whether to wait. */
static void ll_flock (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op) {
  BEGIN(OP_FLOCK); m->num[0] = ino; m->num[1] = (double)fi->fh;
  m->num[2] = op & LOCK_UN ? 2 : op & LOCK_EX ? 1 : 0; m->num[3] = !(op & LOCK_NB); send_req(req, m);
}

static void ll_release (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_RELEASE); m->num[0] = ino; m->num[1] = (double)fi->fh; send_req(req, m);
}

static void ll_fsync (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  BEGIN(OP_FSYNC); m->num[0] = ino; m->num[1] = (double)fi->fh; m->num[2] = datasync; send_req(req, m);
}

static void ll_opendir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_OPENDIR); m->num[0] = ino; m->num[1] = fi->flags; send_req(req, m);
}

static void ll_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  BEGIN(OP_READDIR); m->num[0] = ino; m->num[1] = (double)fi->fh; m->num[2] = (double)size; m->num[3] = (double)off; send_req(req, m);
}

static void ll_readdirplus (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  BEGIN(OP_READDIRPLUS); m->num[0] = ino; m->num[1] = (double)fi->fh; m->num[2] = (double)size; m->num[3] = (double)off; send_req(req, m);
}

static void ll_releasedir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_RELEASEDIR); m->num[0] = ino; m->num[1] = (double)fi->fh; send_req(req, m);
}

static void ll_fsyncdir (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  BEGIN(OP_FSYNCDIR); m->num[0] = ino; m->num[1] = (double)fi->fh; m->num[2] = datasync; send_req(req, m);
}

static void ll_statfs (fuse_req_t req, fuse_ino_t ino) {
  BEGIN(OP_STATFS); m->num[0] = ino; send_req(req, m);
}

static void ll_setxattr (fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  char *copy = malloc(size ? size : 1);
  if (!copy) { fuse_reply_err(req, ENOMEM); return; }
  struct msg *m = begin(req, OP_SETXATTR);
  if (!m) { free(copy); return; }
  memcpy(copy, value, size);
  m->num[0] = ino; m->num[1] = flags; NAME(name, name);
  m->data = copy; m->size = size;
  send_req(req, m);
}

static void ll_getxattr (fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
#ifdef __linux__
  /*
   * Outside user.* the mount keeps no attributes (mount/lowlevel.ts,
   * isUserAttribute): "not supported" says so, here, without a trip to
   * JavaScript. ls -l asks every file for security.selinux and
   * system.posix_acl_access, and stops asking a device that says this.
   */
  if (strncmp(name, "user.", 5) != 0) { fuse_reply_err(req, EOPNOTSUPP); return; }
#endif
  BEGIN(OP_GETXATTR); m->num[0] = ino; m->num[1] = (double)size; NAME(name, name); send_req(req, m);
}

static void ll_listxattr (fuse_req_t req, fuse_ino_t ino, size_t size) {
  BEGIN(OP_LISTXATTR); m->num[0] = ino; m->num[1] = (double)size; send_req(req, m);
}

static void ll_removexattr (fuse_req_t req, fuse_ino_t ino, const char *name) {
  BEGIN(OP_REMOVEXATTR); m->num[0] = ino; NAME(name, name); send_req(req, m);
}

static void ll_create (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  BEGIN(OP_CREATE); m->num[0] = parent; m->num[1] = mode; m->num[2] = fi->flags; NAME(name, name); send_req(req, m);
}

static void ll_fallocate (fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info *fi) {
  BEGIN(OP_FALLOCATE); m->num[0] = ino; m->num[1] = (double)fi->fh; m->num[2] = mode; m->num[3] = (double)offset; m->num[4] = (double)length; send_req(req, m);
}

static const struct fuse_lowlevel_ops ops = {
  .init = ll_init, .lookup = ll_lookup, .forget = ll_forget, .forget_multi = ll_forget_multi,
  .getattr = ll_getattr, .setattr = ll_setattr, .readlink = ll_readlink, .mknod = ll_mknod,
  .mkdir = ll_mkdir, .unlink = ll_unlink, .rmdir = ll_rmdir, .symlink = ll_symlink,
  .rename = ll_rename, .link = ll_link, .open = ll_open, .read = ll_read, .write = ll_write,
  .flush = ll_flush, .release = ll_release, .fsync = ll_fsync, .opendir = ll_opendir,
  .readdir = ll_readdir, .readdirplus = ll_readdirplus, .releasedir = ll_releasedir,
  .fsyncdir = ll_fsyncdir, .statfs = ll_statfs, .setxattr = ll_setxattr, .getxattr = ll_getxattr,
  .listxattr = ll_listxattr, .removexattr = ll_removexattr, .create = ll_create,
  .fallocate = ll_fallocate, .getlk = ll_getlk, .setlk = ll_setlk, .flock = ll_flock,
};

/* ---- on the JavaScript thread: hand a message to the handler ---- */

static void call_js (napi_env env, napi_value handler, void *context, void *data) {
  struct session *s = context;
  struct msg *m = data;
  if (m->size && m->data) {
    pthread_mutex_lock(&s->lock);
    s->queued_bytes -= m->size;
    pthread_cond_signal(&s->drained);
    pthread_mutex_unlock(&s->lock);
  }
  if (env && handler) {
    napi_value argv[8], undef, global;
    napi_get_undefined(env, &undef);
    napi_get_global(env, &global);
    napi_create_int32(env, m->op, &argv[0]);
    napi_create_double(env, m->id, &argv[1]);
    napi_value nums;
    napi_create_array_with_length(env, NUMS, &nums);
    for (uint32_t i = 0; i < NUMS; i++) {
      napi_value v;
      napi_create_double(env, m->num[i], &v);
      napi_set_element(env, nums, i, v);
    }
    argv[2] = nums;
    argv[3] = undef; argv[4] = undef; argv[5] = undef;
    if (m->name) napi_create_string_utf8(env, m->name, NAPI_AUTO_LENGTH, &argv[3]);
    if (m->name2) napi_create_string_utf8(env, m->name2, NAPI_AUTO_LENGTH, &argv[4]);
    if (m->data) {
      void *copy;
      napi_create_buffer_copy(env, m->size, m->data, &copy, &argv[5]);
    }
    napi_create_uint32(env, m->uid, &argv[6]);
    napi_create_uint32(env, m->gid, &argv[7]);
    napi_value result;
    if (napi_call_function(env, global, handler, 8, argv, &result) != napi_ok) {
      /* A throwing handler is a bug in TypeScript; the request must not hang. */
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      if (m->op != OP_FORGET && m->op != OP_INTERRUPT && m->op != OP_EXIT) {
        fuse_req_t req = claim(s, m->id);
        if (req) fuse_reply_err(req, EIO);
      }
    }
  }
  free(m->name); free(m->name2); free(m->data); free(m);
}

static void on_wake (int sig) { (void)sig; }

/* libfuse's own messages, marked as ours. */
static void log_line (enum fuse_log_level level, const char *fmt, va_list ap) {
  (void)level;
  fputs("herds: fuse: ", stderr);
  vfprintf(stderr, fmt, ap);
}

static void install_wake_handler (void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_wake;
  sigemptyset(&sa.sa_mask);
  sigaction(WAKE_SIGNAL, &sa, NULL);
}

/* The handler once per process, without SA_RESTART, so the loop's read returns EINTR and sees the exit. */
static void install_wake (void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, install_wake_handler);
  fuse_set_log_func(log_line);
}

static void *run_loop (void *arg) {
  struct session *s = arg;
  fuse_session_loop(s->se);
  struct msg *m = new_msg(OP_EXIT);
  if (m) post(s, m);
  return NULL;
}

static void *run_notifier (void *arg) {
  struct session *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->nlock);
    while (s->ncount == 0 && !s->nstop) pthread_cond_wait(&s->nwake, &s->nlock);
    if (s->nstop) {
      for (; s->ncount; s->ncount--, s->nhead = (s->nhead + 1) % MAX_NOTES) {
        if (s->notes[s->nhead].req) fuse_reply_err(s->notes[s->nhead].req, ENOTCONN);
      }
      pthread_mutex_unlock(&s->nlock);
      return NULL;
    }
    struct note n = s->notes[s->nhead];
    s->nhead = (s->nhead + 1) % MAX_NOTES;
    s->ncount--;
    pthread_mutex_unlock(&s->nlock);
    /* ENOENT: the kernel no longer knows it, which is what was wanted. */
    if (n.entry) fuse_lowlevel_notify_inval_entry(s->se, n.ino, n.name, strlen(n.name));
    else fuse_lowlevel_notify_inval_inode(s->se, n.ino, n.off, n.len);
    if (n.req) fuse_reply_err(n.req, 0);
  }
}

/* ---- the module's functions ---- */

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, #call " failed"); return NULL; } } while (0)

static napi_value throw_msg (napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
  return NULL;
}

static struct session *session_of (napi_env env, napi_value v) {
  struct session *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || !s) {
    throw_msg(env, "EINVAL", "not a session");
    return NULL;
  }
  if (s->destroyed) { throw_msg(env, "ENOTCONN", "the session is gone"); return NULL; }
  return s;
}

static char *get_string (napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *str = malloc(len + 1);
  if (str) napi_get_value_string_utf8(env, v, str, len + 1, &len);
  return str;
}

static double get_double (napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

/* mount(mountpoint, options, maxWrite, maxReadahead, handler) -> session */
static napi_value js_mount (napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_msg(env, "EINVAL", "mount(mountpoint, options, maxWrite, maxReadahead, handler)");
  struct session *s = calloc(1, sizeof *s);
  if (!s) return throw_msg(env, "ENOMEM", "out of memory");
  s->mountpoint = get_string(env, argv[0]);
  char *options = get_string(env, argv[1]);
  s->conn.max_write = (unsigned)get_double(env, argv[2]);
  s->conn.max_readahead = (unsigned)get_double(env, argv[3]);
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->drained, NULL);
  pthread_mutex_init(&s->nlock, NULL);
  pthread_cond_init(&s->nwake, NULL);
  for (uint32_t i = 0; i < MAX_SLOTS; i++) s->free_slots[i] = MAX_SLOTS - 1 - i;
  s->nfree = MAX_SLOTS;

  /* max_read must be given as an option too, and agree with init's. */
  char *all = options ? malloc(strlen(options) + 32) : NULL;
  if (all) snprintf(all, strlen(options) + 32, "%s,max_read=%u", options, s->conn.max_write);
  free(options);
  options = all;
  char *args_v[] = { "herds", "-o", options, NULL };
  struct fuse_args args = FUSE_ARGS_INIT(3, args_v);
  const char *failed = NULL;
  if (!s->mountpoint || !options) failed = "bad arguments";
  else if (!(s->se = fuse_session_new(&args, &ops, sizeof ops, s))) failed = "fuse_session_new failed (bad options?)";
  else if (fuse_session_mount(s->se, s->mountpoint) != 0) failed = "fuse_session_mount failed";
  free(options);
  if (failed) {
    if (s->se) fuse_session_destroy(s->se);
    free(s->mountpoint); free(s);
    return throw_msg(env, "EIO", failed);
  }

  napi_value name;
  napi_create_string_utf8(env, "herds-fuse", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, s, call_js, &s->tsfn) != napi_ok) {
    fuse_session_unmount(s->se); fuse_session_destroy(s->se);
    free(s->mountpoint); free(s);
    return throw_msg(env, "EIO", "cannot make the thread-safe function");
  }
  install_wake();
  s->notifier_started = pthread_create(&s->notifier, NULL, run_notifier, s) == 0;
  s->loop_started = pthread_create(&s->loop, NULL, run_loop, s) == 0;
  if (!s->loop_started) return throw_msg(env, "EIO", "cannot start the FUSE thread");
  napi_value external;
  CHECK(napi_create_external(env, s, NULL, NULL, &external));
  return external;
}

/*
 * unmount(session): ends the loop (exit, and a signal to wake its read); the
 * OP_EXIT message follows, and destroy() then closes the device, which ends
 * the connection in every mount namespace, and unmounts (lazily).
 */
static napi_value js_unmount (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct session *s = session_of(env, argv[0]);
  if (!s) return NULL;
  fuse_session_exit(s->se);
  if (s->loop_started) pthread_kill(s->loop, WAKE_SIGNAL);
  return NULL;
}

/* wake(session): wakes the loop thread again, in case the first signal came before its read (JS repeats it until the end). */
static napi_value js_wake (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct session *s = session_of(env, argv[0]);
  if (!s) return NULL;
  fuse_session_exit(s->se);
  if (s->loop_started) pthread_kill(s->loop, WAKE_SIGNAL);
  return NULL;
}

/* destroy(session): after the loop ended (OP_EXIT), frees everything; outstanding requests get ENOTCONN. */
static napi_value js_destroy (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct session *s = session_of(env, argv[0]);
  if (!s) return NULL;
  fuse_session_exit(s->se);
  pthread_mutex_lock(&s->lock);
  pthread_cond_broadcast(&s->drained);
  pthread_mutex_unlock(&s->lock);
  if (s->loop_started) pthread_join(s->loop, NULL);
  pthread_mutex_lock(&s->nlock);
  s->nstop = 1;
  pthread_cond_signal(&s->nwake);
  pthread_mutex_unlock(&s->nlock);
  if (s->notifier_started) pthread_join(s->notifier, NULL);
  for (uint32_t i = 0; i < MAX_SLOTS; i++) {
    if (s->slots[i]) { fuse_reply_err(s->slots[i], ENOTCONN); s->slots[i] = NULL; }
  }
  fuse_session_unmount(s->se); /* closes the device, which ends the connection in every namespace, then unmounts */
  fuse_session_destroy(s->se);
  s->destroyed = 1;
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
  /* The session struct itself stays (a few MiB at most, once per mount) so a late call finds `destroyed`. */
  return NULL;
}

/* Fills a stat from the 14 numbers mount/lowlevel.ts writes (Adapter.attr). */
static void fill_stat (const double *a, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)a[0]; st->st_mode = (mode_t)a[1]; st->st_nlink = (nlink_t)a[2];
  st->st_uid = (uid_t)a[3]; st->st_gid = (gid_t)a[4]; st->st_rdev = (dev_t)a[5];
  st->st_size = (off_t)a[6]; st->st_blocks = (blkcnt_t)a[7]; st->st_blksize = 4096;
  st->st_atim.tv_sec = (time_t)a[8]; st->st_atim.tv_nsec = (long)a[9];
  st->st_mtim.tv_sec = (time_t)a[10]; st->st_mtim.tv_nsec = (long)a[11];
  st->st_ctim.tv_sec = (time_t)a[12]; st->st_ctim.tv_nsec = (long)a[13];
}

/* The numbers of a Float64Array of at least `min`, or NULL for anything else. */
static double *f64_array (napi_env env, napi_value v, size_t min) {
  double *a = NULL;
  size_t n = 0, off;
  napi_typedarray_type type;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &n, (void **)&a, &ab, &off) != napi_ok || type != napi_float64_array || n < min) return NULL;
  return a;
}

/* Reads one stat from a Float64Array of 14; anything else leaves it zero. */
static void get_attr (napi_env env, napi_value v, struct stat *st) {
  memset(st, 0, sizeof *st);
  double *a = f64_array(env, v, 14);
  if (a) fill_stat(a, st);
}

/* Reads an entry: [nodeid, attrTimeout, entryTimeout] and the attr array. */
static void get_entry (napi_env env, napi_value nums, napi_value attr, struct fuse_entry_param *e) {
  memset(e, 0, sizeof *e);
  double *a = f64_array(env, nums, 3);
  if (a) {
    e->ino = (fuse_ino_t)a[0]; e->attr_timeout = a[1]; e->entry_timeout = a[2];
  }
  get_attr(env, attr, &e->attr);
}

static void get_file_info (double fh, double flags, struct fuse_file_info *fi) {
  memset(fi, 0, sizeof *fi);
  unsigned f = (unsigned)flags;
  fi->fh = (uint64_t)fh;
  fi->direct_io = f & 1;
  fi->keep_cache = (f >> 1) & 1;
  fi->nonseekable = (f >> 2) & 1;
  fi->cache_readdir = (f >> 3) & 1;
}

#define REPLY_PROLOGUE(n) \
  size_t argc = (n) + 2; napi_value argv[(n) + 2]; \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL)); \
  struct session *s = session_of(env, argv[0]); if (!s) return NULL; \
  fuse_req_t req = claim(s, get_double(env, argv[1])); \
  napi_value result; napi_get_boolean(env, req != NULL, &result); \
  if (!req) return result

/* replyErr(session, id, errno) */
static napi_value js_reply_err (napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(1);
  fuse_reply_err(req, (int)get_double(env, argv[2]));
  return result;
}

/* replyEntry(session, id, Float64Array[nodeid, attrTimeout, entryTimeout], attr) */
static napi_value js_reply_entry (napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(2);
  struct fuse_entry_param e;
  get_entry(env, argv[2], argv[3], &e);
  fuse_reply_entry(req, &e);
  return result;
}

/* replyCreate(session, id, entryNums, attr, fh, openFlags) */
static napi_value js_reply_create (napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(4);
  struct fuse_entry_param e;
  struct fuse_file_info fi;
  get_entry(env, argv[2], argv[3], &e);
  get_file_info(get_double(env, argv[4]), get_double(env, argv[5]), &fi);
  fuse_reply_create(req, &e, &fi);
  return result;
}

/* replyAttr(session, id, attr, timeout) */
static napi_value js_reply_attr (napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(2);
  struct stat st;
  get_attr(env, argv[2], &st);
  fuse_reply_attr(req, &st, get_double(env, argv[3]));
  return result;
}

/* replyOpen(session, id, fh, openFlags) */
static napi_value js_reply_open (napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(2);
  struct fuse_file_info fi;
  get_file_info(get_double(env, argv[2]), get_double(env, argv[3]), &fi);
  fuse_reply_open(req, &fi);
  return result;
}

/* replyBuf(session, id, Uint8Array) */
static napi_value js_reply_buf (napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(1);
  void *data = NULL;
  size_t len = 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, argv[2], &type, &len, &data, &ab, &off) != napi_ok || type != napi_uint8_array) {
    fuse_reply_err(req, EIO);
    return result;
  }
  fuse_reply_buf(req, data, len);
  return result;
}

/* replyReadlink(session, id, target) */
static napi_value js_reply_readlink (napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(1);
  char *target = get_string(env, argv[2]);
  if (target) fuse_reply_readlink(req, target); else fuse_reply_err(req, ENOMEM);
  free(target);
  return result;
}

/* replyWrite(session, id, count) */
static napi_value js_reply_write (napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(1);
  fuse_reply_write(req, (size_t)get_double(env, argv[2]));
  return result;
}

/* replyXattrSize(session, id, size) */
static napi_value js_reply_xattr (napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(1);
  fuse_reply_xattr(req, (size_t)get_double(env, argv[2]));
  return result;
}

/* replyLock(session, id, Float64Array[type 0-2, start, length, pid]): the lock in the way, or type 2 (unlock) for none. */
static napi_value js_reply_lock (napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(1);
  double *a = f64_array(env, argv[2], 4);
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_UNLCK;
  if (a) {
    fl.l_type = a[0] == 0 ? F_RDLCK : a[0] == 1 ? F_WRLCK : F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)a[1];
    fl.l_len = (off_t)a[2];
    fl.l_pid = (pid_t)a[3];
  }
  fuse_reply_lock(req, &fl);
  return result;
}

/* replyStatfs(session, id, Float64Array[bsize, frsize, blocks, bfree, bavail, files, ffree, favail, namemax]) */
static napi_value js_reply_statfs (napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(1);
  double *a = f64_array(env, argv[2], 9);
  struct statvfs sv;
  memset(&sv, 0, sizeof sv);
  if (a) {
    sv.f_bsize = (unsigned long)a[0]; sv.f_frsize = (unsigned long)a[1]; sv.f_blocks = (fsblkcnt_t)a[2];
    sv.f_bfree = (fsblkcnt_t)a[3]; sv.f_bavail = (fsblkcnt_t)a[4]; sv.f_files = (fsfilcnt_t)a[5];
    sv.f_ffree = (fsfilcnt_t)a[6]; sv.f_favail = (fsfilcnt_t)a[7]; sv.f_namemax = (unsigned long)a[8];
  }
  fuse_reply_statfs(req, &sv);
  return result;
}

/*
 * replyDir(session, id, size, plus, names[], offsets Float64Array, entryNums Float64Array (3 each), attrs Float64Array (14 each))
 * Packs entries while they fit in `size`; returns how many it packed, so
 * JavaScript counts a lookup for each one a readdirplus handed over.
 */
static napi_value js_reply_dir (napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct session *s = session_of(env, argv[0]);
  if (!s) return NULL;
  fuse_req_t req = claim(s, get_double(env, argv[1]));
  napi_value result;
  if (!req) { napi_create_int32(env, -1, &result); return result; }
  size_t size = (size_t)get_double(env, argv[2]);
  bool plus = false;
  napi_get_value_bool(env, argv[3], &plus);
  uint32_t count = 0;
  napi_get_array_length(env, argv[4], &count);
  double *offsets = NULL, *entries = NULL, *attrs = NULL;
  size_t n1 = 0, n2 = 0, n3 = 0, off;
  napi_typedarray_type type;
  napi_value ab;
  napi_get_typedarray_info(env, argv[5], &type, &n1, (void **)&offsets, &ab, &off);
  napi_get_typedarray_info(env, argv[6], &type, &n2, (void **)&entries, &ab, &off);
  napi_get_typedarray_info(env, argv[7], &type, &n3, (void **)&attrs, &ab, &off);
  if (n1 < count || n2 < 3 * (size_t)count || n3 < 14 * (size_t)count || size > (16u << 20)) {
    fuse_reply_err(req, EIO);
    napi_create_int32(env, -1, &result);
    return result;
  }
  char *buf = malloc(size ? size : 1);
  if (!buf) { fuse_reply_err(req, ENOMEM); napi_create_int32(env, -1, &result); return result; }
  size_t used = 0;
  uint32_t packed = 0;
  for (; packed < count; packed++) {
    napi_value v;
    napi_get_element(env, argv[4], packed, &v);
    char name[1024];
    size_t len;
    if (napi_get_value_string_utf8(env, v, name, sizeof name, &len) != napi_ok) break;
    /* A name cut short (or cut at a NUL inside it) would list another file: the listing fails instead. */
    if (len >= sizeof name - 1 || strlen(name) != len) { free(buf); fuse_reply_err(req, EIO); napi_create_int32(env, -1, &result); return result; }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    const double *en = entries + 3 * packed, *a = attrs + 14 * packed;
    e.ino = (fuse_ino_t)en[0]; e.attr_timeout = en[1]; e.entry_timeout = en[2];
    fill_stat(a, &e.attr);
    size_t need = plus
      ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)offsets[packed])
      : fuse_add_direntry(req, buf + used, size - used, name, &e.attr, (off_t)offsets[packed]);
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  napi_create_uint32(env, packed, &result);
  return result;
}

/* notifyInode(session, nodeid, offset, length) / notifyEntry(session, parent, name): false when the queue is full. */
static napi_value queue_note (napi_env env, struct session *s, struct note *n) {
  napi_value result;
  pthread_mutex_lock(&s->nlock);
  bool ok = s->ncount < MAX_NOTES;
  if (ok) {
    s->notes[(s->nhead + s->ncount) % MAX_NOTES] = *n;
    s->ncount++;
    pthread_cond_signal(&s->nwake);
  }
  pthread_mutex_unlock(&s->nlock);
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value js_notify_inode (napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct session *s = session_of(env, argv[0]);
  if (!s) return NULL;
  struct note n = { .entry = 0, .ino = (fuse_ino_t)get_double(env, argv[1]), .off = (off_t)get_double(env, argv[2]), .len = (off_t)get_double(env, argv[3]) };
  return queue_note(env, s, &n);
}

/*
 * replyAfterInval(session, id, ino): answers the request (success) only after
 * the kernel dropped the inode's pages and attributes, on the notifier
 * thread: a lock taken must not be followed by a read of pages from before
 * it. False, with the request left as it was, when the queue is full.
 */
static napi_value js_reply_after_inval (napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct session *s = session_of(env, argv[0]);
  if (!s) return NULL;
  struct note n = { .entry = 0, .ino = (fuse_ino_t)get_double(env, argv[2]) };
  pthread_mutex_lock(&s->nlock);
  bool room = s->ncount < MAX_NOTES && !s->nstop;
  bool ok = room && (n.req = claim(s, get_double(env, argv[1]))) != NULL;
  if (ok) {
    s->notes[(s->nhead + s->ncount) % MAX_NOTES] = n;
    s->ncount++;
    pthread_cond_signal(&s->nwake);
  }
  pthread_mutex_unlock(&s->nlock);
  /* true: queued, or no longer ours to answer (interrupted meanwhile); false: try again. */
  napi_get_boolean(env, ok || room, &result);
  return result;
}

static napi_value js_notify_entry (napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct session *s = session_of(env, argv[0]);
  if (!s) return NULL;
  struct note n = { .entry = 1, .ino = (fuse_ino_t)get_double(env, argv[1]) };
  size_t len;
  if (napi_get_value_string_utf8(env, argv[2], n.name, sizeof n.name, &len) != napi_ok || len >= sizeof n.name - 1) {
    napi_value no;
    napi_get_boolean(env, true, &no); /* a name the kernel cannot hold is not cached there */
    return no;
  }
  return queue_note(env, s, &n);
}

static napi_value init (napi_env env, napi_value exports) {
  const struct { const char *name; napi_callback fn; } fns[] = {
    { "mount", js_mount }, { "unmount", js_unmount }, { "wake", js_wake }, { "destroy", js_destroy },
    { "replyErr", js_reply_err }, { "replyEntry", js_reply_entry }, { "replyCreate", js_reply_create },
    { "replyAttr", js_reply_attr }, { "replyOpen", js_reply_open }, { "replyBuf", js_reply_buf },
    { "replyReadlink", js_reply_readlink }, { "replyWrite", js_reply_write }, { "replyXattr", js_reply_xattr },
    { "replyStatfs", js_reply_statfs }, { "replyLock", js_reply_lock }, { "replyDir", js_reply_dir },
    { "notifyInode", js_notify_inode }, { "replyAfterInval", js_reply_after_inval }, { "notifyEntry", js_notify_entry },
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
