/* An MPI application whose communication pattern is known, for checking VTTIF.
 *
 *   patterns T0FILE PERIOD_MS BYTES PHASE:SECONDS ...
 *
 * PHASE is ring, mesh2d, alltoall, master or idle. Every PERIOD_MS each rank sends
 * BYTES to each of its out-neighbours and receives from its in-neighbours (nonblocking,
 * polled with short sleeps so the ranks do not spin on the CPU). All ranks follow one
 * schedule from a common start time T0 (CLOCK_REALTIME, broadcast by rank 0, which
 * writes it to T0FILE as seconds since the epoch), so phases change at the same moment
 * everywhere. Rank 0 prints one line per phase: "phase NAME START_EPOCH_S".
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_until(double t) {
    double d = t - now();
    if (d > 0) usleep((useconds_t)(d * 1e6));
}

/* Fills out[] with rank r's out-neighbours in pattern p (in-neighbours are the same set
 * for every pattern but ring, whose in-neighbour is r-1). */
static int neighbours(const char *p, int r, int n, int *out, int *in, int *nin) {
    int k = 0;
    *nin = 0;
    if (!strcmp(p, "ring")) {
        out[k++] = (r + 1) % n;
        in[(*nin)++] = (r + n - 1) % n;
        return k;
    }
    if (!strcmp(p, "alltoall")) {
        for (int i = 0; i < n; i++)
            if (i != r) out[k++] = i;
    } else if (!strcmp(p, "master")) {
        if (r == 0) {
            for (int i = 1; i < n; i++) out[k++] = i;
        } else {
            out[k++] = 0;
        }
    } else if (!strcmp(p, "mesh2d")) {
        int rows = 1;
        for (int i = 1; i * i <= n; i++)
            if (n % i == 0) rows = i;
        int cols = n / rows, row = r / cols, col = r % cols;
        if (col > 0) out[k++] = r - 1;
        if (col < cols - 1) out[k++] = r + 1;
        if (row > 0) out[k++] = r - cols;
        if (row < rows - 1) out[k++] = r + cols;
    } else if (strcmp(p, "idle")) {
        fprintf(stderr, "unknown phase %s\n", p);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    for (int i = 0; i < k; i++) in[i] = out[i];
    *nin = k;
    return k;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int r, n;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (argc < 5) {
        if (r == 0) fprintf(stderr, "usage: %s T0FILE PERIOD_MS BYTES PHASE:SECONDS ...\n", argv[0]);
        MPI_Finalize();
        return 2;
    }
    double period = atof(argv[2]) / 1e3;
    int bytes = atoi(argv[3]);
    char *sendbuf = calloc(1, bytes), *recvbuf = malloc((size_t)bytes * n);
    int *out = malloc(sizeof(int) * n), *in = malloc(sizeof(int) * n);
    MPI_Request *req = malloc(sizeof(MPI_Request) * 2 * n);

    double t0 = now() + 1.0;
    MPI_Bcast(&t0, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (r == 0) {
        FILE *f = fopen(argv[1], "w");
        if (f) {
            fprintf(f, "%.6f\n", t0);
            fclose(f);
        }
    }
    double start = t0;
    for (int a = 4; a < argc; a++) {
        char name[32];
        double secs;
        if (sscanf(argv[a], "%31[^:]:%lf", name, &secs) != 2) {
            if (r == 0) fprintf(stderr, "bad phase %s\n", argv[a]);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        int nin, nout = neighbours(name, r, n, out, in, &nin);
        sleep_until(start);
        if (r == 0) {
            /* When the machine is slow a phase may begin after its planned time. */
            printf("phase %s %.6f\n", name, now() > start ? now() : start);
            fflush(stdout);
        }
        double end = start + secs;
        /* Every rank does the same number of rounds: a rank that is late catches up
         * instead of skipping rounds, or it would wait forever for a message its
         * neighbour never sends (or send one nobody receives). */
        long rounds = (nout == 0 && nin == 0) ? 0 : (long)(secs / period + 0.5);
        for (long k = 0; k < rounds; k++) {
            double t = start + k * period;
            sleep_until(t);
            int q = 0;
            for (int i = 0; i < nin; i++)
                MPI_Irecv(recvbuf + (size_t)i * bytes, bytes, MPI_CHAR, in[i], a, MPI_COMM_WORLD, &req[q++]);
            for (int i = 0; i < nout; i++)
                MPI_Isend(sendbuf, bytes, MPI_CHAR, out[i], a, MPI_COMM_WORLD, &req[q++]);
            int done = 0;
            while (!done) {
                MPI_Testall(q, req, &done, MPI_STATUSES_IGNORE);
                if (!done) usleep(200);
            }
        }
        start = end;
    }
    sleep_until(start);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}
