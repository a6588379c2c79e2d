/*
 * The vLLM /metrics parser: a real scrape, the gpu_cache_usage_perc
 * fallback, first series wins, unusable values, and hostile input.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/llmd_prom.h"


#define NO_METRICS                                                           \
    "no vLLM metrics (vllm:num_requests_waiting, vllm:num_requests_running, " \
    "vllm:kv_cache_usage_perc)"


/* a vLLM 0.10 scrape (spec vllm-interop.md section 5.1), more series */
static const char  vllm_scrape[] =
    "# HELP python_gc_objects_collected_total Objects collected during gc\n"
    "# TYPE python_gc_objects_collected_total counter\n"
    "python_gc_objects_collected_total{generation=\"0\"} 12345.0\n"
    "# HELP vllm:num_requests_running Number of requests in model execution "
    "batches.\n"
    "# TYPE vllm:num_requests_running gauge\n"
    "vllm:num_requests_running{engine=\"0\",model_name=\"Qwen/Qwen3-0.6B\"} "
    "3.0\n"
    "# HELP vllm:num_requests_waiting Number of requests waiting to be "
    "processed.\n"
    "# TYPE vllm:num_requests_waiting gauge\n"
    "vllm:num_requests_waiting{engine=\"0\",model_name=\"Qwen/Qwen3-0.6B\"} "
    "2.0\n"
    "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent "
    "usage.\n"
    "# TYPE vllm:kv_cache_usage_perc gauge\n"
    "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"Qwen/Qwen3-0.6B\"} "
    "0.0421\n"
    "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms "
    "of number of queried tokens.\n"
    "# TYPE vllm:prefix_cache_queries_total counter\n"
    "vllm:prefix_cache_queries_total{engine=\"0\","
    "model_name=\"Qwen/Qwen3-0.6B\"} 32.0\n"
    "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
    "# TYPE vllm:cache_config_info gauge\n"
    "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\","
    "calculate_kv_scales=\"False\",cpu_offload_gb=\"0\","
    "enable_prefix_caching=\"True\",engine=\"0\","
    "gpu_memory_utilization=\"0.9\",num_cpu_blocks=\"None\","
    "num_gpu_blocks=\"27951\",prefix_caching_hash_algo=\"sha256\","
    "sliding_window=\"None\",swap_space=\"4\"} 1.0\n"
    "# HELP vllm:lora_requests_info Running stats on lora requests.\n"
    "# TYPE vllm:lora_requests_info gauge\n"
    "vllm:lora_requests_info{max_lora=\"4\","
    "running_lora_adapters=\"sql-lora\",waiting_lora_adapters=\"\"} "
    "1.7537953269e+09\n"
    "# HELP vllm:e2e_request_latency_seconds Histogram of e2e request "
    "latency in seconds.\n"
    "# TYPE vllm:e2e_request_latency_seconds histogram\n"
    "vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"+Inf\","
    "model_name=\"Qwen/Qwen3-0.6B\"} 4.0\n";


static llmd_vllm_metrics_t  m;
static char                 err[LLMD_ERRLEN];


/* the text is copied to a buffer of exactly len bytes: no NUL after it */
static int
parse_n(const char *text, size_t len)
{
    int    rc;
    char  *copy;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);

    memset(&m, 0xa5, sizeof(m));
    err[0] = 'x';
    err[1] = '\0';

    rc = llmd_prom_parse_vllm(copy, len, &m, err, sizeof(err));

    free(copy);

    if (rc == 0) {
        assert_string_equal(err, "");
    }

    return rc;
}


static int
parse(const char *text)
{
    return parse_n(text, strlen(text));
}


static void
test_vllm_scrape(void **state)
{
    assert_int_equal(parse(vllm_scrape), 0);

    assert_true(m.have_waiting);
    assert_true(m.have_running);
    assert_true(m.have_kv);
    assert_true(m.have_cache_info);
    assert_true(m.waiting == 2.0);
    assert_true(m.running == 3.0);
    assert_true(m.kv_usage == 0.0421);
    assert_int_equal(m.block_size, 16);
    assert_int_equal(m.num_gpu_blocks, 27951);
    assert_true(m.have_lora);
    assert_int_equal(m.lora_max, 4);
    assert_string_equal(m.lora_running, "sql-lora");
    assert_string_equal(m.lora_waiting, "");
}


/* vllm:lora_requests_info: the latest series (largest value) wins. */
static void
test_lora_requests_info(void **state)
{
    char  text[1024], names[400];
    int   i, n;

    assert_int_equal(parse(
        "vllm:num_requests_waiting 0\n"
        "vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"a\","
        "waiting_lora_adapters=\"\"} 100\n"
        "vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"a,b\","
        "waiting_lora_adapters=\"c\"} 300\n"
        "vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"\","
        "waiting_lora_adapters=\"\"} 200\n"), 0);
    assert_true(m.have_lora);
    assert_int_equal(m.lora_max, 2);
    assert_string_equal(m.lora_running, "a,b");
    assert_string_equal(m.lora_waiting, "c");

    /* no max_lora: not usable; none at all: no LoRA information */
    assert_int_equal(parse(
        "vllm:num_requests_waiting 0\n"
        "vllm:lora_requests_info{running_lora_adapters=\"a\"} 100\n"), 0);
    assert_false(m.have_lora);

    /* a list too long is cut after the last whole name */
    n = 0;
    for (i = 0; i < 40; i++) {
        n += sprintf(names + n, "%sadapter%02d", i ? "," : "", i);
    }

    snprintf(text, sizeof(text), "vllm:num_requests_running 1\n"
             "vllm:lora_requests_info{max_lora=\"1\","
             "running_lora_adapters=\"%s\"} 5\n", names);
    assert_int_equal(parse(text), 0);
    assert_true(m.have_lora);
    assert_true(strlen(m.lora_running) < LLMD_LORA_LEN);
    assert_int_equal(strlen(m.lora_running) % 10, 9);
    assert_memory_equal(m.lora_running, names, strlen(m.lora_running));
    assert_string_equal(m.lora_waiting, "");
}


static void
test_simulator_scrape(void **state)
{
    /* llm-d-inference-sim: model_name only, integer values, no HELP */
    assert_int_equal(parse(
        "vllm:cache_config_info{block_size=\"64\",num_gpu_blocks=\"1024\"} 1\n"
        "vllm:num_requests_running{model_name=\"m\"} 7\n"
        "vllm:num_requests_waiting{model_name=\"m\"} 12\n"
        "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.5\n"), 0);

    assert_true(m.waiting == 12);
    assert_true(m.running == 7);
    assert_true(m.kv_usage == 0.5);
    assert_int_equal(m.block_size, 64);
    assert_int_equal(m.num_gpu_blocks, 1024);
}


static void
test_partial_metrics(void **state)
{
    /* one gauge is enough; the rest is reported absent */
    assert_int_equal(parse("vllm:num_requests_waiting 4\n"), 0);
    assert_true(m.have_waiting);
    assert_true(m.waiting == 4);
    assert_false(m.have_running);
    assert_false(m.have_kv);
    assert_false(m.have_cache_info);
    assert_true(m.running == 0);
    assert_true(m.kv_usage == 0);
    assert_int_equal(m.block_size, 0);

    /* cache info alone is not enough to schedule on */
    assert_int_equal(parse("vllm:cache_config_info{block_size=\"16\"} 1\n"),
                     -1);
    assert_string_equal(err, NO_METRICS);
}


static void
test_gpu_cache_fallback(void **state)
{
    /* old vLLM: only the deprecated name */
    assert_int_equal(parse(
        "vllm:num_requests_waiting{model_name=\"m\"} 1.0\n"
        "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.25\n"), 0);
    assert_true(m.have_kv);
    assert_true(m.kv_usage == 0.25);

    /* both names: the new one wins wherever it appears */
    assert_int_equal(parse(
        "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.25\n"
        "vllm:num_requests_waiting{model_name=\"m\"} 1.0\n"
        "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.75\n"), 0);
    assert_true(m.kv_usage == 0.75);

    /* an unusable new value does not hide a usable old one */
    assert_int_equal(parse(
        "vllm:kv_cache_usage_perc{model_name=\"m\"} NaN\n"
        "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.5\n"), 0);
    assert_true(m.have_kv);
    assert_true(m.kv_usage == 0.5);

    /* the old name alone still counts as a vLLM metric */
    assert_int_equal(parse("vllm:gpu_cache_usage_perc 0.125"), 0);
    assert_false(m.have_waiting);
    assert_true(m.kv_usage == 0.125);
}


static void
test_first_series_wins(void **state)
{
    assert_int_equal(parse(
        "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 5.0\n"
        "vllm:num_requests_waiting{engine=\"1\",model_name=\"m\"} 9.0\n"
        "vllm:num_requests_running{engine=\"1\",model_name=\"m\"} 1.0\n"
        "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 2.0\n"
        "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.1\n"
        "vllm:kv_cache_usage_perc{engine=\"1\",model_name=\"m\"} 0.9\n"
        "vllm:gpu_cache_usage_perc{engine=\"1\",model_name=\"m\"} 0.3\n"
        "vllm:cache_config_info{block_size=\"16\",engine=\"0\","
        "num_gpu_blocks=\"100\"} 1.0\n"
        "vllm:cache_config_info{block_size=\"32\",engine=\"1\","
        "num_gpu_blocks=\"200\"} 1.0\n"), 0);

    assert_true(m.waiting == 5);
    assert_true(m.running == 1);
    assert_true(m.kv_usage == 0.1);
    assert_int_equal(m.block_size, 16);
    assert_int_equal(m.num_gpu_blocks, 100);
}


static void
test_unusable_values_ignored(void **state)
{
    assert_int_equal(parse(
        "vllm:num_requests_waiting{engine=\"0\"} NaN\n"
        "vllm:num_requests_waiting{engine=\"1\"} -1\n"
        "vllm:num_requests_waiting{engine=\"2\"} +Inf\n"
        "vllm:num_requests_waiting{engine=\"3\"} -Inf\n"
        "vllm:num_requests_waiting{engine=\"4\"} 6e0\n"
        "vllm:num_requests_running 1e400\n"
        "vllm:num_requests_running -0.5\n"
        "vllm:kv_cache_usage_perc nan\n"), 0);

    assert_true(m.have_waiting);
    assert_true(m.waiting == 6);
    assert_false(m.have_running);
    assert_false(m.have_kv);

    /* only unusable values: nothing found */
    assert_int_equal(parse(
        "vllm:num_requests_waiting NaN\n"
        "vllm:num_requests_running -3\n"
        "vllm:kv_cache_usage_perc +Inf\n"), -1);
    assert_string_equal(err, NO_METRICS);
}


static void
test_kv_usage_clamped(void **state)
{
    assert_int_equal(parse("vllm:kv_cache_usage_perc 1.5\n"), 0);
    assert_true(m.kv_usage == 1.0);

    assert_int_equal(parse("vllm:kv_cache_usage_perc 0\n"), 0);
    assert_true(m.have_kv);
    assert_true(m.kv_usage == 0.0);
}


static void
test_value_forms(void **state)
{
    /* exponent forms, a timestamp, blanks and tabs */
    assert_int_equal(parse(
        "vllm:num_requests_waiting{a=\"b\"}   1.5e+01  1700000000000\n"
        "vllm:num_requests_running\t\t2E1\n"
        "vllm:kv_cache_usage_perc {engine = \"0\" , } .5\n"), 0);

    assert_true(m.waiting == 15);
    assert_true(m.running == 20);
    assert_true(m.kv_usage == 0.5);
}


static void
test_quoted_labels(void **state)
{
    /* quotes, commas, braces and fake values inside label values */
    assert_int_equal(parse(
        "vllm:num_requests_waiting{model_name=\"a\\\",b}c 99\","
        "x=\"\\\\\",y=\"line\\nbreak\"} 7\n"), 0);
    assert_true(m.waiting == 7);

    assert_int_equal(parse(
        "vllm:num_requests_running{model_name=\"} 99\"} 3\n"), 0);
    assert_true(m.running == 3);
}


static void
test_line_endings(void **state)
{
    /* CRLF, blank lines, indentation, no final newline */
    assert_int_equal(parse(
        "\r\n"
        "# TYPE vllm:num_requests_waiting gauge\r\n"
        "  vllm:num_requests_waiting{model_name=\"m\"} 8.0\r\n"
        "\r\n"
        "vllm:num_requests_running{model_name=\"m\"} 4.0 \r\n"
        "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.25"), 0);

    assert_true(m.waiting == 8);
    assert_true(m.running == 4);
    assert_true(m.kv_usage == 0.25);

    /* a lone CR is not a line break: one line, and not a sample */
    assert_int_equal(parse("vllm:num_requests_waiting 1\r"
                           "vllm:num_requests_running 2\n"), -1);
    assert_string_equal(err, "not Prometheus text exposition");
}


static void
test_comments_and_names(void **state)
{
    assert_int_equal(parse(
        "# vllm:num_requests_waiting 99\n"
        "#vllm:num_requests_running 99\n"
        "vllm:num_requests_waiting_total 98\n"
        "vllm:num_requests_waitin 97\n"
        "xvllm:num_requests_waiting 96\n"
        "VLLM:num_requests_waiting 95\n"
        "vllm:num_requests_waiting-x 94\n"
        "sglang:num_queue_reqs 93\n"
        "vllm:num_requests_waiting 3\n"), 0);

    assert_true(m.waiting == 3);
    assert_false(m.have_running);
}


static void
test_malformed_lines_skipped(void **state)
{
    assert_int_equal(parse(
        "vllm:num_requests_waiting\n"
        "vllm:num_requests_waiting{\n"
        "vllm:num_requests_waiting{model_name=\"m} 1\n"
        "vllm:num_requests_waiting{model_name=m} 2\n"
        "vllm:num_requests_waiting{=\"m\"} 3\n"
        "vllm:num_requests_waiting{a=\"b\"c=\"d\"} 4\n"
        "vllm:num_requests_waiting{a=\"b\"}} 5\n"
        "vllm:num_requests_waiting abc\n"
        "vllm:num_requests_waiting 1.0.0\n"
        "vllm:num_requests_waiting 0x10\n"
        "vllm:num_requests_waiting 12abc\n"
        "vllm:num_requests_waiting "
        "1.0000000000000000000000000000000000000000000000000000000000000001\n"
        "{model_name=\"m\"} 6\n"
        "9vllm 7\n"
        "vllm:num_requests_waiting 11\n"), 0);

    assert_true(m.waiting == 11);
}


static void
test_cache_config_info(void **state)
{
    /* "None" until the engine is up; a later usable series is taken */
    assert_int_equal(parse(
        "vllm:num_requests_waiting 0\n"
        "vllm:cache_config_info{block_size=\"None\","
        "num_gpu_blocks=\"None\"} 1.0\n"
        "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"None\"} "
        "1.0\n"
        "vllm:cache_config_info{block_size=\"32\",num_gpu_blocks=\"500\"} "
        "1.0\n"), 0);
    assert_true(m.have_cache_info);
    assert_int_equal(m.block_size, 16);
    assert_int_equal(m.num_gpu_blocks, 0);

    /* labels that are no plain decimal number are not used */
    assert_int_equal(parse(
        "vllm:num_requests_waiting 0\n"
        "vllm:cache_config_info{block_size=\"1\\\"6\","
        "num_gpu_blocks=\"4294967296\"} 1.0\n"), 0);
    assert_false(m.have_cache_info);

    assert_int_equal(parse(
        "vllm:num_requests_waiting 0\n"
        "vllm:cache_config_info{block_size=\"\",num_gpu_blocks=\"-5\","
        "other=\"16\"} 1.0\n"
        "vllm:cache_config_info{num_gpu_blocks=\"4294967295\"} 1.0\n"), 0);
    assert_true(m.have_cache_info);
    assert_int_equal(m.block_size, 0);
    assert_int_equal(m.num_gpu_blocks, 4294967295U);

    /* a series whose sample does not parse is not used */
    assert_int_equal(parse(
        "vllm:num_requests_waiting 0\n"
        "vllm:cache_config_info{block_size=\"16\"}\n"), 0);
    assert_false(m.have_cache_info);
}


static void
test_errors(void **state)
{
    assert_int_equal(llmd_prom_parse_vllm(NULL, 0, &m, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "empty metrics body");

    assert_int_equal(parse_n("", 0), -1);
    assert_string_equal(err, "empty metrics body");

    assert_int_equal(parse("<html><body>404 Not Found</body></html>\n"), -1);
    assert_string_equal(err, "not Prometheus text exposition");

    assert_int_equal(parse("\n\r\n   \n"), -1);
    assert_string_equal(err, "not Prometheus text exposition");

    assert_int_equal(parse(
        "# HELP process_cpu_seconds_total Total CPU time.\n"
        "# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total 1.5\n"), -1);
    assert_string_equal(err, NO_METRICS);

    /* a small or absent error buffer */
    assert_int_equal(llmd_prom_parse_vllm("x", 1, &m, err, 4), -1);
    assert_string_equal(err, "not");
    assert_int_equal(llmd_prom_parse_vllm("x", 1, &m, NULL, 0), -1);
}


static void
test_binary_garbage(void **state)
{
    int        rc;
    char      *buf;
    size_t     n, i, k;
    uint32_t   rng;

    n = 1 << 16;
    buf = malloc(n + 64);
    assert_non_null(buf);

    rng = 4242;

    for (k = 0; k < 64; k++) {
        for (i = 0; i < n; i++) {
            rng = rng * 1103515245 + 12345;
            buf[i] = (char) (rng >> 16);
        }

        /* random bytes alone never yield a vLLM gauge */
        rc = parse_n(buf, n);
        assert_int_equal(rc, -1);
        assert_true(err[0] != '\0');
    }

    /* NUL bytes and garbage around a valid line */
    memcpy(buf + 1000, "\nvllm:num_requests_running{a=\"\0\"} 5\n", 36);
    assert_int_equal(parse_n(buf, n), 0);
    assert_true(m.running == 5);

    free(buf);
}


static void
test_huge_lines(void **state)
{
    char    *buf, *p;
    size_t   n;

    n = 4 << 20;
    buf = malloc(n + 256);
    assert_non_null(buf);

    /* a 4 MiB label value, then a sample */
    p = buf + sprintf(buf, "vllm:num_requests_waiting{huge=\"");
    memset(p, 'v', n);
    p += n;
    p += sprintf(p, "\"} 42\nvllm:num_requests_running 1\n");

    assert_int_equal(parse_n(buf, p - buf), 0);
    assert_true(m.waiting == 42);
    assert_true(m.running == 1);

    /* a 4 MiB value: not a number */
    p = buf + sprintf(buf, "vllm:num_requests_waiting ");
    memset(p, '1', n);
    p += n;
    p += sprintf(p, "\nvllm:num_requests_running 2");

    assert_int_equal(parse_n(buf, p - buf), 0);
    assert_false(m.have_waiting);
    assert_true(m.running == 2);

    /* 4 MiB without a newline nor a closing quote */
    p = buf + sprintf(buf, "vllm:num_requests_waiting{a=\"");
    memset(p, '\\', n);
    p += n;

    assert_int_equal(parse_n(buf, p - buf), -1);
    assert_string_equal(err, "not Prometheus text exposition");

    free(buf);
}


/* every prefix of a real scrape parses or fails cleanly (ASan checks) */
static void
test_truncated_scrapes(void **state)
{
    int     rc;
    size_t  len;

    for (len = 0; len <= sizeof(vllm_scrape) - 1; len++) {
        rc = parse_n(vllm_scrape, len);

        if (rc == 0) {
            assert_true(m.have_running);

        } else {
            assert_false(m.have_running);
        }
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_vllm_scrape),
        cmocka_unit_test(test_simulator_scrape),
        cmocka_unit_test(test_partial_metrics),
        cmocka_unit_test(test_gpu_cache_fallback),
        cmocka_unit_test(test_first_series_wins),
        cmocka_unit_test(test_unusable_values_ignored),
        cmocka_unit_test(test_kv_usage_clamped),
        cmocka_unit_test(test_value_forms),
        cmocka_unit_test(test_quoted_labels),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_comments_and_names),
        cmocka_unit_test(test_malformed_lines_skipped),
        cmocka_unit_test(test_cache_config_info),
        cmocka_unit_test(test_lora_requests_info),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_binary_garbage),
        cmocka_unit_test(test_huge_lines),
        cmocka_unit_test(test_truncated_scrapes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
