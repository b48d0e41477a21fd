/*
 * inflight.c - requests announced in flight, per process (inflight.h).
 *
 * Processes hash by pid into chains; each holds pointers to its entries,
 * which are allocated one by one (a few, for requests of a second or
 * more), so that an idle collector holds nothing.
 */
#include "config.h"
#include "inflight.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUCKETS 256

struct proc {
	struct proc *next;
	uint32_t pid;
	uint64_t hello_start;     /* the image that announced (0: unknown) */
	uint64_t proc_start;      /* the probe's start time (0: unknown) */
	uint64_t round_ns;        /* the set's round, the sender's clock */
	int64_t round_mono;       /* when it came, ours */
	int64_t wall_minus_mono;
	int64_t dead_since;       /* first found gone (ours), 0: alive */
	unsigned n;
	struct col_inflight_req *v[COL_INFLIGHT_PER_PROC];
};

struct col_inflight {
	col_inflight_probe_fn probe;
	struct proc *b[BUCKETS];
	size_t nprocs, nreqs;
	uint64_t killed, refused;
};

int col_inflight_proc_probe(uint32_t pid, uint64_t *start)
{
	int saved = errno;
	int rc = 0;
	if (pid == 0 || pid > INT32_MAX || (kill((pid_t)pid, 0) < 0 && errno == ESRCH)) {
		rc = -1;
		goto out;
	}
	char path[32], buf[1024];
	snprintf(path, sizeof path, "/proc/%u/stat", (unsigned)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto out; /* hidepid, or gone this instant: the next probe says */
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		goto out;
	buf[n] = '\0';
	/* "pid (comm) S ppid ...": comm may hold spaces and parentheses, so
	 * the fields are counted from the last ')'. State is field 3,
	 * starttime field 22. */
	char *p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ')
		goto out;
	p += 2;
	int zombie = *p == 'Z' || *p == 'X';
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
		/* num_threads: a leader whose main thread returned through
		 * pthread_exit() while others serve shows Z too, with more
		 * than the one (ps shows it "Zl"): alive. */
		if (field == 19 && p && zombie && strtoul(p, NULL, 10) > 1)
			zombie = 0;
	}
	if (zombie) {
		rc = -1; /* killed, not yet reaped by its parent */
		goto out;
	}
	if (p == NULL)
		goto out;
	*start = strtoull(p, NULL, 10);
	rc = *start != 0;
out:
	errno = saved;
	return rc;
}

struct col_inflight *col_inflight_new(col_inflight_probe_fn probe)
{
	struct col_inflight *f = calloc(1, sizeof *f);
	if (f)
		f->probe = probe ? probe : col_inflight_proc_probe;
	return f;
}

static void proc_clear(struct col_inflight *f, struct proc *p)
{
	for (unsigned i = 0; i < p->n; i++)
		free(p->v[i]);
	f->nreqs -= p->n;
	p->n = 0;
}

/* Unlinks and frees the process at *link. */
static void proc_drop(struct col_inflight *f, struct proc **link)
{
	struct proc *p = *link;
	proc_clear(f, p);
	*link = p->next;
	free(p);
	f->nprocs--;
}

void col_inflight_free(struct col_inflight *f)
{
	if (f == NULL)
		return;
	for (unsigned b = 0; b < BUCKETS; b++)
		while (f->b[b])
			proc_drop(f, &f->b[b]);
	free(f);
}

static struct proc **proc_link(struct col_inflight *f, uint32_t pid)
{
	struct proc **l = &f->b[pid % BUCKETS];
	while (*l && (*l)->pid != pid)
		l = &(*l)->next;
	return l;
}

void col_inflight_note(struct col_inflight *f, uint32_t pid, uint64_t hello_start,
                       const struct ap_rec_inflight *r, int64_t wall_minus_mono, int64_t now_mono)
{
	/* pid 0: a sender in a pid namespace we cannot see (ingest.c), every
	 * such process under one number that no probe can tell alive. */
	if (pid == 0)
		return;
	struct proc **l = proc_link(f, pid);
	struct proc *p = *l;
	if (r->flags & AP_INFLF_FINAL) {
		if (p)
			proc_drop(f, l);
		return;
	}
	if (p == NULL) {
		if (r->req_id == 0)
			return; /* an empty round of a process we hold nothing of */
		if (f->nprocs >= COL_INFLIGHT_MAX_PROCS || (p = calloc(1, sizeof *p)) == NULL) {
			f->refused++;
			return;
		}
		p->pid = pid;
		p->hello_start = hello_start;
		uint64_t start = 0;
		if (f->probe(pid, &start) > 0)
			p->proc_start = start;
		p->next = *l;
		*l = p;
		f->nprocs++;
	}
	if (r->round_ns < p->round_ns)
		return; /* an older round than the set's (impossible from one sender) */
	if (r->round_ns > p->round_ns) {
		proc_clear(f, p);
		p->round_ns = r->round_ns;
	}
	p->round_mono = now_mono;
	p->wall_minus_mono = wall_minus_mono;
	p->dead_since = 0;
	if (r->req_id == 0)
		return;
	for (unsigned i = 0; i < p->n; i++)
		if (p->v[i]->req_id == r->req_id)
			return;
	struct col_inflight_req *q;
	if (p->n >= COL_INFLIGHT_PER_PROC || f->nreqs >= COL_INFLIGHT_MAX_REQS ||
	    (q = malloc(sizeof *q)) == NULL) {
		f->refused++;
		return;
	}
	q->req_id = r->req_id;
	q->start_ns = r->start_ns;
	q->bytes_in = r->bytes_in;
	q->req_flags = r->req_flags;
	q->mlen = (uint8_t)(r->method.len < sizeof q->method ? r->method.len : sizeof q->method);
	memcpy(q->method, r->method.p, q->mlen);
	q->plen = r->path.len < sizeof q->path ? r->path.len : (uint16_t)sizeof q->path;
	memcpy(q->path, r->path.p, q->plen);
	p->v[p->n++] = q;
	f->nreqs++;
}

int col_inflight_done(struct col_inflight *f, uint32_t pid, uint64_t req_id)
{
	if (f->nprocs == 0)
		return 0;
	struct proc *p = *proc_link(f, pid);
	if (p == NULL)
		return 0;
	for (unsigned i = 0; i < p->n; i++) {
		if (p->v[i]->req_id != req_id)
			continue;
		free(p->v[i]);
		p->v[i] = p->v[--p->n];
		f->nreqs--;
		return 1;
	}
	return 0;
}

void col_inflight_hello(struct col_inflight *f, uint32_t pid, uint64_t start_mono)
{
	if (f->nprocs == 0)
		return;
	struct proc **l = proc_link(f, pid);
	struct proc *p = *l;
	if (p == NULL)
		return;
	if (p->hello_start == 0)
		p->hello_start = start_mono;
	else if (p->hello_start != start_mono)
		proc_drop(f, l);
}

size_t col_inflight_reap(struct col_inflight *f, int64_t now_mono, col_inflight_emit_fn emit,
                         void *arg)
{
	size_t emitted = 0;
	for (unsigned b = 0; b < BUCKETS && f->nprocs; b++) {
		struct proc **l = &f->b[b];
		while (*l) {
			struct proc *p = *l;
			if (p->n == 0) {
				proc_drop(f, l);
				continue;
			}
			uint64_t start = 0;
			int r = f->probe(p->pid, &start);
			int gone = r < 0 || (r > 0 && p->proc_start && start != p->proc_start);
			if (!gone) {
				p->dead_since = 0;
				if (now_mono - p->round_mono > COL_INFLIGHT_STALE_NS)
					proc_drop(f, l);
				else
					l = &p->next;
				continue;
			}
			if (p->dead_since == 0 || now_mono - p->dead_since < COL_INFLIGHT_GRACE_NS) {
				if (p->dead_since == 0)
					p->dead_since = now_mono;
				l = &p->next;
				continue;
			}
			for (unsigned i = 0; i < p->n; i++) {
				const struct col_inflight_req *q = p->v[i];
				emit(arg, p->pid, q, p->round_ns > q->start_ns ? p->round_ns : q->start_ns,
				     p->wall_minus_mono);
			}
			emitted += p->n;
			f->killed += p->n;
			proc_drop(f, l);
		}
	}
	return emitted;
}

void col_inflight_counters(const struct col_inflight *f, struct col_inflight_counters *c)
{
	c->pending = f->nreqs;
	c->processes = f->nprocs;
	c->killed = f->killed;
	c->refused = f->refused;
}
