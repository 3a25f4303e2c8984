/*
 * close-fds: closes every file descriptor above standard error, then runs its
 * arguments. The node starts every job through it, outside any fence, so a job
 * (and bwrap) starts with stdin, stdout and stderr only: not the databases,
 * pipes and /dev/fuse that native code in the node opened without O_CLOEXEC.
 *
 *   close-fds <program> [<argument>...]
 *
 * Exits 127 with a line on stderr if it cannot close them all or run <program>.
 * Built by .ci/setup; kept tiny, with no options, so there is little to trust.
 */
/* syscall(2) and dirfd(3) are not in strict C11 headers. */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

/* Descriptors listed at most; a process with more is closed by counting. */
#define MAX_LISTED 65536

static int listed[MAX_LISTED];

/* One system call where the kernel has it (Linux 5.9 and later). */
static int close_by_range(void)
{
#if defined(__linux__) && defined(SYS_close_range)
	return (int)syscall(SYS_close_range, 3U, ~0U, 0U);
#else
	errno = ENOSYS;
	return -1;
#endif
}

/* Reads the open descriptors from the kernel's list (Linux /proc, macOS /dev/fd), then closes them. */
static int close_listed(void)
{
	DIR *dir = opendir("/proc/self/fd");
	if (dir == NULL)
		dir = opendir("/dev/fd");
	if (dir == NULL)
		return -1;
	int own = dirfd(dir);
	size_t count = 0;
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		char *end;
		long fd = strtol(entry->d_name, &end, 10);
		if (end == entry->d_name || *end != '\0' || fd <= 2 || fd == own)
			continue;
		if (count == MAX_LISTED) {
			closedir(dir);
			errno = EMFILE;
			return -1;
		}
		listed[count++] = (int)fd;
	}
	closedir(dir);
	for (size_t i = 0; i < count; i++)
		close(listed[i]);
	return 0;
}

/* The last resort: every number up to the limit. */
static int close_counting(void)
{
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 1L << 20)
		max = 1L << 20;
	for (long fd = 3; fd < max; fd++)
		close((int)fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: close-fds <program> [<argument>...]\n");
		return 127;
	}
	if (close_by_range() != 0 && close_listed() != 0)
		close_counting();
	execvp(argv[1], &argv[1]);
	fprintf(stderr, "herds: cannot run %s: %s\n", argv[1], strerror(errno));
	return 127;
}
