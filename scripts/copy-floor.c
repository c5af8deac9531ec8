/*
 * The floor for a copy benchmark: copies the data extents of a sparse file into a new sparse file
 * with splice(2), the kernel's one-copy path (page-cache pages go to the output without a trip
 * through user memory), skipping holes with SEEK_DATA/SEEK_HOLE. No program that reads and writes
 * the same bytes through user buffers, qemu-img and vdisk included, can beat it on the same machine;
 * the benchmarks time it next to them to show how far below that floor a target lies.
 * Usage: copy-floor INPUT OUTPUT
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#include <sys/types.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  int in = open(argv[1], O_RDONLY), out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int p[2];
  if (in < 0 || out < 0 || pipe(p) != 0) { perror("copy-floor"); return 1; }
  const size_t PIPE = 1 << 20;
  fcntl(p[1], F_SETPIPE_SZ, (int)PIPE);
  off_t size = lseek(in, 0, SEEK_END);
  if (ftruncate(out, size) != 0) { perror("copy-floor: ftruncate"); return 1; }
  for (off_t pos = 0; pos < size;) {
    off_t data = lseek(in, pos, SEEK_DATA);
    if (data < 0) break;
    off_t hole = lseek(in, data, SEEK_HOLE);
    for (off_t o = data; o < hole;) {
      size_t want = (size_t)(hole - o) < PIPE ? (size_t)(hole - o) : PIPE;
      off_t at = o;
      ssize_t got = splice(in, &o, p[1], NULL, want, SPLICE_F_MOVE);
      if (got <= 0) { perror("copy-floor: splice in"); return 1; }
      for (ssize_t put = 0; put < got;) {
        ssize_t n = splice(p[0], NULL, out, &at, (size_t)(got - put), SPLICE_F_MOVE);
        if (n <= 0) { perror("copy-floor: splice out"); return 1; }
        put += n;
      }
    }
    pos = hole;
  }
  return close(out) == 0 ? 0 : 1;
}
