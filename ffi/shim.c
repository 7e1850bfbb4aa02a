/* What bindgen cannot wrap: thread-local rte_errno and a few macros. */
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_version.h>
#include <rte_cycles.h>

int wrenvnet_rte_errno(void) { return rte_errno; }
void wrenvnet_rte_errno_set(int value) { rte_errno = value; }
const char *wrenvnet_rte_version(void) { return rte_version(); }
/* rte_rdtsc is static inline; wrapped here so Rust can read the TSC through DPDK's own definition. */
uint64_t wrenvnet_rdtsc(void) { return rte_rdtsc(); }
uint16_t wrenvnet_pktmbuf_headroom(void) { return RTE_PKTMBUF_HEADROOM; }
uint16_t wrenvnet_mbuf_default_buf_size(void) { return RTE_MBUF_DEFAULT_BUF_SIZE; }
