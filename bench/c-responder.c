/*
 * c-responder: the floor for any userspace responder over a TAP device.
 *
 * Opens (creates, or attaches to a persistent) TAP device, waits on it with
 * epoll, and handles one frame per read() and one per write(): it answers ARP
 * requests for IP with MAC, and ICMP echo requests to IP with echo replies.
 * Everything else is ignored. Nothing clever (no batching, no vnet header),
 * so a benchmark can compare a real stack to the cheapest thing that answers
 * ping.
 *
 *   cc -O2 -o c-responder bench/c-responder.c
 *   c-responder IFNAME IPV4 [MAC]        (MAC default 02:00:00:00:00:01)
 *
 * Prints its counters on SIGINT/SIGTERM and exits 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define ETH_HLEN 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806

static volatile sig_atomic_t stop;
static unsigned long long rx_frames, arp_replies, echo_replies, ignored, tx_errors;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* Internet checksum (RFC 1071) over len bytes; 0 when a header with its checksum is valid. */
static uint16_t cksum(const uint8_t *p, size_t len) {
  uint32_t s = 0;
  for (; len > 1; p += 2, len -= 2) s += get16(p);
  if (len) s += (uint32_t)p[0] << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') when one 16-bit word changes from m to m'. */
static uint16_t cksum_update(uint16_t hc, uint16_t m, uint16_t m_new) {
  uint32_t s = (uint16_t)~hc + (uint16_t)~m + m_new;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

/* Rewrites f in place into the reply; returns its length, or 0 to ignore. */
static size_t arp_reply(uint8_t *f, size_t len, const uint8_t ip[4], const uint8_t mac[6]) {
  uint8_t *a = f + ETH_HLEN;
  if (len < ETH_HLEN + 28) return 0;
  /* Ethernet/IPv4 request (RFC 826) for our address. */
  if (get16(a) != 1 || get16(a + 2) != ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4 || get16(a + 6) != 1) return 0;
  if (memcmp(a + 24, ip, 4) != 0) return 0;
  memcpy(f, f + 6, 6); /* to the asker */
  memcpy(f + 6, mac, 6);
  put16(a + 6, 2);
  memcpy(a + 18, a + 8, 10); /* sender hw + proto address become target */
  memcpy(a + 8, mac, 6);
  memcpy(a + 14, ip, 4);
  return ETH_HLEN + 28;
}

static size_t icmp_reply(uint8_t *f, size_t len, const uint8_t ip[4], const uint8_t mac[6]) {
  uint8_t *h = f + ETH_HLEN;
  if (len < ETH_HLEN + 20 || h[0] >> 4 != 4) return 0;
  size_t ihl = (size_t)(h[0] & 0x0f) * 4;
  size_t tot = get16(h + 2);
  if (ihl < 20 || tot < ihl + 8 || ETH_HLEN + tot > len) return 0;
  if (h[9] != 1 || memcmp(h + 16, ip, 4) != 0) return 0;
  if (get16(h + 6) & 0x3fff) return 0; /* fragments: not ours to reassemble */
  if (cksum(h, ihl) != 0) return 0;
  uint8_t *icmp = h + ihl;
  if (icmp[0] != 8 || icmp[1] != 0) return 0; /* echo request (RFC 792) */
  uint8_t t[6];
  memcpy(t, f + 6, 6);
  memcpy(f, t, 6);
  memcpy(f + 6, mac, 6);
  uint8_t a[4];
  memcpy(a, h + 12, 4); /* swapping the addresses leaves the IP checksum as is */
  memcpy(h + 12, h + 16, 4);
  memcpy(h + 16, a, 4);
  icmp[0] = 0;
  put16(icmp + 2, cksum_update(get16(icmp + 2), 0x0800, 0x0000));
  return ETH_HLEN + tot;
}

static int parse_mac(const char *s, uint8_t mac[6]) {
  unsigned v[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) {
    if (v[i] > 255) return -1;
    mac[i] = (uint8_t)v[i];
  }
  return 0;
}

int main(int argc, char **argv) {
  uint8_t ip[4], mac[6] = {0x02, 0, 0, 0, 0, 0x01};
  if (argc < 3 || argc > 4 || strlen(argv[1]) >= IFNAMSIZ || inet_pton(AF_INET, argv[2], ip) != 1 ||
      (argc == 4 && parse_mac(argv[3], mac) != 0)) {
    fprintf(stderr, "usage: %s IFNAME IPV4 [MAC]\n", argv[0]);
    return 2;
  }

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    perror("open /dev/net/tun");
    return 1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  memcpy(ifr.ifr_name, argv[1], strlen(argv[1]));
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    perror("TUNSETIFF");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    perror("epoll");
    return 1;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  fprintf(stderr, "c-responder: %s answering for %s\n", ifr.ifr_name, argv[2]);

  static uint8_t f[65536];
  while (!stop) {
    struct epoll_event out;
    int n = epoll_wait(ep, &out, 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return 1;
    }
    for (;;) {
      ssize_t len = read(fd, f, sizeof f);
      if (len < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        perror("read");
        return 1;
      }
      rx_frames++;
      size_t rlen = 0;
      if (len >= ETH_HLEN) {
        uint16_t type = get16(f + 12);
        if (type == ETHERTYPE_ARP && (rlen = arp_reply(f, (size_t)len, ip, mac)) != 0) arp_replies++;
        else if (type == ETHERTYPE_IPV4 && (rlen = icmp_reply(f, (size_t)len, ip, mac)) != 0) echo_replies++;
      }
      if (rlen == 0) {
        ignored++;
        continue;
      }
      if (write(fd, f, rlen) != (ssize_t)rlen) tx_errors++;
    }
  }
  fprintf(stderr, "c-responder: rx %llu arp %llu echo %llu ignored %llu tx_errors %llu\n", rx_frames, arp_replies,
          echo_replies, ignored, tx_errors);
  close(ep);
  close(fd);
  return 0;
}
