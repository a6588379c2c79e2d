/*
 * Fuzz target: the Prometheus text a vLLM pod answers on /metrics
 * (llmd_prom_parse_vllm, core/llmd_prom.h), as the metrics scraper
 * parses it.
 */
#include <math.h>
#include <string.h>

#include "core/llmd_prom.h"
#include "fuzz_common.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  rc;
    char                 err[LLMD_ERRLEN];
    llmd_vllm_metrics_t  m;

    err[0] = '\0';
    rc = llmd_prom_parse_vllm((const char *) data, size, &m, err,
                              sizeof(err));

    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }

    FUZZ_CHECK(m.have_waiting || m.have_running || m.have_kv);

    /* NaN, infinite and negative gauges are not used; usage is clamped */
    if (m.have_waiting) {
        FUZZ_CHECK(isfinite(m.waiting) && m.waiting >= 0);
    }

    if (m.have_running) {
        FUZZ_CHECK(isfinite(m.running) && m.running >= 0);
    }

    if (m.have_kv) {
        FUZZ_CHECK(m.kv_usage >= 0 && m.kv_usage <= 1);
    }

    return 0;
}
