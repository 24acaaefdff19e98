/* The threads of rnn's kernels and the barrier at which they meet: shared by
 * the LSTM's, the GRU's and the DNC's kernels.c, which include it in their
 * compute part (once per instruction set) after defining RNN_THREADS_ENV (the
 * environment variable that fixes the thread count), UNIT_ALIGN and
 * CPU_RELAX. A job (struct job, defined by the includer after this) embeds a
 * barrier_t; the includer defines set_threads(). Part of each library's build
 * key. */

/* The barrier's counters sit on their own cache line, apart from the job's
 * read-mostly fields. */
typedef struct {
    _Alignas(64) atomic_int arrived;
    atomic_int generation;
    atomic_int sleepers;
    atomic_int long_waits; /* waits that outlasted the spin (all rounds) */
    int rounds;            /* completed rounds (written by the last thread) */
    atomic_int single;     /* set: the rest of the job runs on thread 0 */
    int n;
} barrier_t;

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
static void
futex_wait(atomic_int *word, int expected)
{
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}
static void
futex_wake_all(atomic_int *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
}
#else
static void
futex_wait(atomic_int *word, int expected)
{
    (void)word;
    (void)expected;
    sched_yield();
}
static void
futex_wake_all(atomic_int *word)
{
    (void)word;
}
#endif

static double
seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Spin budget of a waiter: when every thread has a core, the last one
 * arrives within microseconds (the imbalance of one step's shares). */
#define SPIN_SECONDS 200e-6

/* Calls after a job gave up its threads that run on one thread right away
 * (then threads are tried again). */
#define CONTENDED_CALLS 4
#define WARM_ROUNDS     6
static atomic_int contended_calls_left;

/* Waits until all b->n threads have arrived. A waiter spins for up to
 * SPIN_SECONDS, then sleeps on a futex: when other work competes for the
 * cores, spinning would take the CPU from the very thread it waits for.
 * Such long waits mean the threads do not have the cores to themselves;
 * when they are frequent the last thread sets b->single and the job
 * continues on thread 0 alone (lockstep threads that are descheduled in
 * turn are far slower than one thread). */
static void
barrier_wait(barrier_t *b)
{
    if (b->n == 1)
        return;
    const int gen = atomic_load_explicit(&b->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) == b->n - 1) {
        /* Judged after WARM_ROUNDS (whose first touches of the outputs'
         * pages make the shares uneven) over at least as many more. */
        if (++b->rounds == WARM_ROUNDS)
            atomic_store(&b->long_waits, 0);
        const int judged = b->rounds - WARM_ROUNDS;
        if (judged >= WARM_ROUNDS && 3 * atomic_load(&b->long_waits) > judged) {
            atomic_store(&b->single, 1);
            atomic_store(&contended_calls_left, CONTENDED_CALLS);
        }
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_store(&b->generation, gen + 1); /* seq_cst: see below */
        if (atomic_load(&b->sleepers) > 0)
            futex_wake_all(&b->generation);
        return;
    }
    const double start = seconds();
    for (int spins = 0;; spins++) {
        if (atomic_load_explicit(&b->generation, memory_order_acquire) != gen)
            return;
        CPU_RELAX();
        if ((spins & 15) == 15 && seconds() - start > SPIN_SECONDS)
            break;
    }
    atomic_fetch_add(&b->long_waits, 1);
    /* Announce the sleep before the last check (both seq_cst), so that the
     * last thread either sees a sleeper and wakes it, or this check sees the
     * new generation; futex_wait itself returns at once if it changed. */
    atomic_fetch_add(&b->sleepers, 1);
    while (atomic_load(&b->generation) == gen)
        futex_wait(&b->generation, gen);
    atomic_fetch_sub(&b->sleepers, 1);
}

static int
available_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

#define MAX_THREADS 16

/* Threads for a step of `flops` over `units` hidden units: enough work per
 * thread to beat the barrier, at most one per CPU and one per UNIT_ALIGN
 * units, and one for a while after a job found the cores contended.
 * The variable named by RNN_THREADS_ENV overrides (for benchmarks and tests). */
static int
thread_count(double flops, int64_t units)
{
    double n;
    const char *env = getenv(RNN_THREADS_ENV);
    if (env && atoi(env) > 0) {
        n = atoi(env);
    }
    else {
        n = available_cpus();
        if (flops / 2.0e6 < n)
            n = flops / 2.0e6;
        int left = atomic_load(&contended_calls_left);
        if (left > 0) {
            atomic_compare_exchange_strong(&contended_calls_left, &left, left - 1);
            n = 1;
        }
    }
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    const double by_units = (double)((units + UNIT_ALIGN - 1) / UNIT_ALIGN);
    if (n > by_units)
        n = by_units;
    return n < 1 ? 1 : (int)n;
}

typedef struct job job_t;
typedef void (*work_fn)(job_t *, int);

typedef struct {
    job_t *job;
    int index;
    work_fn fn;
    atomic_int *go;
} worker_arg_t;

static void *
worker_main(void *p)
{
    worker_arg_t *w = p;
    while (!atomic_load_explicit(w->go, memory_order_acquire))
        sched_yield();
    w->fn(w->job, w->index);
    return NULL;
}

static void set_threads(job_t *j, int n);

/* Where a job's threads run. Linux places a new thread by its CPUs' recent
 * load and often puts it beside its creator: measured on a 2-CPU machine
 * inside TensorFlow's executor, most jobs ran both threads on one CPU, every
 * barrier a long wait, and the job gave up its threads (2x slower than one
 * thread, where the two threads take 0.6x of it once on separate CPUs). So
 * for the job's duration the caller stays on the CPU it is on and the
 * workers start on the other CPUs it may use (the scheduler still spreads
 * them over those); the caller's CPU set is restored afterwards. Returns
 * whether the caller was pinned, with its CPU set in `allowed` and the
 * workers' attributes in `attr`. */
#ifdef __linux__
static bool
place_threads(cpu_set_t *allowed, pthread_attr_t *attr)
{
    if (sched_getaffinity(0, sizeof(*allowed), allowed) != 0)
        return false;
    const int here = sched_getcpu();
    if (here < 0 || !CPU_ISSET(here, allowed) || CPU_COUNT(allowed) < 2)
        return false;
    cpu_set_t others = *allowed, one;
    CPU_CLR(here, &others);
    CPU_ZERO(&one);
    CPU_SET(here, &one);
    if (pthread_attr_init(attr) != 0)
        return false;
    if (pthread_attr_setaffinity_np(attr, sizeof(others), &others) != 0 ||
        sched_setaffinity(0, sizeof(one), &one) != 0) {
        pthread_attr_destroy(attr);
        return false;
    }
    return true;
}
#endif

/* Runs fn(job, i) for i in [0, n) on n threads (the caller is thread 0). The
 * workers wait until all are started; if the system refuses a thread, the
 * work is shared among those that started. */
static void
run_threads(job_t *job, int n, work_fn fn)
{
    pthread_t tid[MAX_THREADS];
    worker_arg_t args[MAX_THREADS];
    atomic_int go = 0;
    int started = 1;
    pthread_attr_t attr, *workers = NULL;
#ifdef __linux__
    cpu_set_t allowed;
    if (n > 1 && place_threads(&allowed, &attr))
        workers = &attr;
#endif
    for (int i = 1; i < n; i++) {
        args[i] = (worker_arg_t){job, i, fn, &go};
        if (pthread_create(&tid[i], workers, worker_main, &args[i]) != 0)
            break;
        started++;
    }
    set_threads(job, started);
    atomic_store_explicit(&go, 1, memory_order_release);
    fn(job, 0);
    for (int i = 1; i < started; i++)
        pthread_join(tid[i], NULL);
#ifdef __linux__
    if (workers) {
        pthread_attr_destroy(workers);
        sched_setaffinity(0, sizeof(allowed), &allowed);
    }
#endif
}
