/* SPDX-License-Identifier: Apache-2.0 */
/* proc.c - CPU time and memory of a process and all its descendants.
 *
 * Forking proxies (websockify, socat fork) spread a workload over many
 * processes, so every figure is summed over the tree under PID:
 *   cpu_s   utime + stime + cutime + cstime of every live process in the
 *           tree (a reaped child's time has moved into its parent's
 *           cutime/cstime, so the sum does not drop when children exit)
 *   pss_kb  Pss from /proc/P/smaps_rollup (RSS would count the pages that
 *           forked children share with their parent once per child)
 *   procs   how many processes the tree has
 * With --pids it lists the tree's PIDs instead, one per line (for taskset).
 *
 * Usage: sgbench-proc [--pss] [--pids] PID
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int pid;
    int ppid;
    unsigned long long ticks;
} Proc;

/* Parses /proc/PID/stat; the command name may hold spaces and ')'. */
static int
read_stat(int pid, Proc *p)
{
    char path[64], buf[4096];
    FILE *f;
    size_t n;
    char *s;
    unsigned long long ut, st;
    long long cut, cst;
    int ppid;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    s = strrchr(buf, ')');
    if (s == NULL)
        return -1;
    /* Fields after ")": state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime cutime cstime */
    if (sscanf(s + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &ppid,
               &ut, &st, &cut, &cst) != 5)
        return -1;
    p->pid = pid;
    p->ppid = ppid;
    p->ticks = ut + st + (unsigned long long)cut + (unsigned long long)cst;
    return 0;
}

static long
read_pss_kb(int pid)
{
    char path[64], line[256];
    FILE *f;
    long kb = 0;

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "Pss: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}

/* Resolves whether procs[i] descends from @root, memoised in @state. */
static char
mark(const Proc *procs, const long *by_pid, int max_pid, char *state, size_t i, int root)
{
    long parent;

    if (state[i] != 0)
        return state[i];
    if (procs[i].pid == root) {
        state[i] = 1;
        return 1;
    }
    parent = (procs[i].ppid > 0 && procs[i].ppid <= max_pid) ? by_pid[procs[i].ppid] : -1;
    state[i] = 2;                 /* provisional: breaks any cycle */
    if (parent >= 0)
        state[i] = mark(procs, by_pid, max_pid, state, (size_t)parent, root);
    return state[i];
}

int
main(int argc, char **argv)
{
    int root = 0;
    int want_pss = 0, want_pids = 0;
    Proc *procs = NULL;
    size_t n = 0, cap = 0;
    DIR *d;
    struct dirent *e;
    char *in_tree;
    size_t count = 0;
    unsigned long long ticks = 0;
    long pss = 0;
    long *by_pid;
    int max_pid = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pss") == 0)
            want_pss = 1;
        else if (strcmp(argv[i], "--pids") == 0)
            want_pids = 1;
        else
            root = atoi(argv[i]);
    }
    if (root <= 0) {
        fprintf(stderr, "usage: sgbench-proc [--pss] [--pids] PID\n");
        return 2;
    }
    d = opendir("/proc");
    if (d == NULL) {
        perror("/proc");
        return 1;
    }
    while ((e = readdir(d)) != NULL) {
        Proc p;

        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        if (read_stat(atoi(e->d_name), &p) < 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            procs = realloc(procs, cap * sizeof(*procs));
            if (procs == NULL) {
                perror("realloc");
                return 1;
            }
        }
        procs[n++] = p;
    }
    closedir(d);
    /* Mark the tree: a process is in it if it is the root or its parent
     * is; index the table by pid so the walk stays linear. */
    for (size_t i = 0; i < n; i++) {
        if (procs[i].pid > max_pid)
            max_pid = procs[i].pid;
    }
    by_pid = malloc(((size_t)max_pid + 1) * sizeof(*by_pid));
    in_tree = calloc(n ? n : 1, 1);   /* 0 unknown, 1 in, 2 out */
    if (by_pid == NULL || in_tree == NULL) {
        perror("malloc");
        return 1;
    }
    for (int i = 0; i <= max_pid; i++)
        by_pid[i] = -1;
    for (size_t i = 0; i < n; i++)
        by_pid[procs[i].pid] = (long)i;
    for (size_t i = 0; i < n; i++)
        mark(procs, by_pid, max_pid, in_tree, i, root);
    for (size_t i = 0; i < n; i++) {
        if (in_tree[i] != 1)
            continue;
        count++;
        ticks += procs[i].ticks;
        if (want_pids)
            printf("%d\n", procs[i].pid);
        if (want_pss)
            pss += read_pss_kb(procs[i].pid);
    }
    if (count == 0) {
        fprintf(stderr, "sgbench-proc: no process %d\n", root);
        return 1;
    }
    if (!want_pids)
        printf("procs=%zu cpu_s=%.2f pss_kb=%ld\n", count,
               (double)ticks / (double)sysconf(_SC_CLK_TCK), pss);
    return 0;
}
