/*
 * udp-tool: the load generator and the kernel-side reference servers for the
 * UDP benchmarks. Plain blocking sockets, nothing clever, so the stack and the
 * kernel are measured with the same client.
 *
 *   udp-tool rr HOST PORT SIZE SECONDS      one datagram out, wait for its echo, repeat;
 *                                           prints "round_trips N seconds S timeouts T"
 *   udp-tool blast HOST PORT SIZE SECONDS   send as fast as the socket takes them;
 *                                           prints "sent N seconds S"
 *   udp-tool echo PORT                      RFC 862 echo server (kernel reference)
 *   udp-tool discard PORT                   RFC 863 discard server (kernel reference)
 *
 *   cc -O2 -o udp-tool bench/udp-tool.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int udp_socket(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("socket");
    exit(2);
  }
  return fd;
}

static struct sockaddr_in addr_of(const char *host, const char *port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(port));
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "udp-tool: bad address %s\n", host);
    exit(2);
  }
  return a;
}

static int serve(const char *port, int echo) {
  int fd = udp_socket();
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(port));
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    perror("bind");
    return 2;
  }
  static char buf[65536];
  for (;;) {
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("recvfrom");
      return 2;
    }
    if (echo) sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
  }
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "echo") == 0) return serve(argv[2], 1);
  if (argc >= 3 && strcmp(argv[1], "discard") == 0) return serve(argv[2], 0);
  if (argc < 6 || (strcmp(argv[1], "rr") != 0 && strcmp(argv[1], "blast") != 0)) {
    fprintf(stderr, "usage: udp-tool rr|blast HOST PORT SIZE SECONDS | udp-tool echo|discard PORT\n");
    return 2;
  }
  struct sockaddr_in dst = addr_of(argv[2], argv[3]);
  size_t size = (size_t)atoi(argv[4]);
  double seconds = atof(argv[5]);
  int fd = udp_socket();
  if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) {
    perror("connect");
    return 2;
  }
  static char out[65536], in[65536];
  for (size_t i = 0; i < size; i++) out[i] = (char)i;
  double start = now(), end = start + seconds;
  unsigned long long n = 0, timeouts = 0;
  if (strcmp(argv[1], "rr") == 0) {
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (now() < end) {
      if (send(fd, out, size, 0) < 0) {
        if (errno == ECONNREFUSED) continue;
        perror("send");
        return 1;
      }
      ssize_t r = recv(fd, in, sizeof in, 0);
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          timeouts++;
          continue;
        }
        if (errno == ECONNREFUSED) continue;
        perror("recv");
        return 1;
      }
      if ((size_t)r != size || memcmp(in, out, size) != 0) {
        fprintf(stderr, "udp-tool: echo differs (%zd bytes)\n", r);
        return 1;
      }
      n++;
    }
    printf("round_trips %llu seconds %.3f timeouts %llu\n", n, now() - start, timeouts);
  } else {
    while (now() < end) {
      for (int k = 0; k < 64; k++) {
        if (send(fd, out, size, 0) < 0) {
          if (errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED) continue;
          perror("send");
          return 1;
        }
        n++;
      }
    }
    printf("sent %llu seconds %.3f\n", n, now() - start);
  }
  return 0;
}
