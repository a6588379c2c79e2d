/*
 * Endpoint labels and llm-d's file-discovery endpoints file.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/llmd_labels.h"
#include "core/llmd_endpoints_file.h"


static char  err[LLMD_ERRLEN];


static llmd_endpoints_file_t *
parse(const char *text, size_t max)
{
    err[0] = '\0';
    return llmd_endpoints_file_parse(text, strlen(text), "eps.yaml", max,
                                     err, sizeof(err));
}


static void
test_labels_parse(void **state)
{
    char         out[LLMD_LABELS_LEN];
    size_t       len;
    const char  *v;
    const char  *ok = "llm-d.ai/role=decode,zone=a,empty=";

    assert_int_equal(llmd_labels_parse(ok, strlen(ok), out, err,
                                       sizeof(err)), 0);
    assert_string_equal(out, ok);

    v = llmd_labels_get(out, "llm-d.ai/role", &len);
    assert_non_null(v);
    assert_int_equal(len, 6);
    assert_memory_equal(v, "decode", 6);

    v = llmd_labels_get(out, "empty", &len);
    assert_non_null(v);
    assert_int_equal(len, 0);

    assert_null(llmd_labels_get(out, "zon", &len));
    assert_null(llmd_labels_get(out, "role", &len));

    assert_int_equal(llmd_labels_parse("", 0, out, err, sizeof(err)), 0);
    assert_string_equal(out, "");

#define BAD(text, msg)                                                       \
    assert_int_equal(llmd_labels_parse(text, strlen(text), out, err,         \
                                       sizeof(err)), -1);                    \
    assert_non_null(strstr(err, msg))

    BAD("role", "is not key=value");
    BAD("=x", "empty key");
    BAD("a=b,", "end with");
    BAD("a=b,a=c", "given twice");
    BAD("a b=c", "may only hold");
    BAD("a=b c", "may only hold");
    BAD("a/b/c=d", "one '/'");
    BAD("/a=d", "may only hold");
    BAD("a=b/c", "may only hold");
#undef BAD
}


static void
test_labels_add(void **state)
{
    int   i;
    char  labels[LLMD_LABELS_LEN] = "";
    char  key[32];

    assert_int_equal(llmd_labels_add(labels, "a", "1", err, sizeof(err)), 0);
    assert_int_equal(llmd_labels_add(labels, "b/c", "", err, sizeof(err)),
                     0);
    assert_string_equal(labels, "a=1,b/c=");
    assert_int_equal(llmd_labels_add(labels, "a", "2", err, sizeof(err)),
                     -1);
    assert_int_equal(llmd_labels_add(labels, "x", "a,b", err, sizeof(err)),
                     -1);

    /* bounded: the text never grows beyond LLMD_LABELS_LEN */
    for (i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "key-%02d", i);
        if (llmd_labels_add(labels, key, "value", err, sizeof(err)) != 0) {
            break;
        }
    }

    assert_true(i < 100);
    assert_non_null(strstr(err, "longer than"));
    assert_true(strlen(labels) < LLMD_LABELS_LEN);
}


static void
test_file_entries(void **state)
{
    llmd_endpoints_file_t  *ef;

    ef = parse("endpoints:\n"
               "- name: vllm-0\n"
               "  address: \"10.0.0.1\"\n"
               "  port: \"8000\"\n"
               "  labels:\n"
               "    llm-d.ai/role: decode\n"
               "- name: vllm-1\n"
               "  namespace: prod\n"
               "  address: 10.0.0.2\n"
               "  port: 8001\n"
               "- name: v6\n"
               "  address: \"::1\"\n"
               "  port: \"9000\"\n", 16);

    assert_non_null(ef);
    assert_int_equal(ef->n, 3);
    assert_int_equal(ef->skipped, 0);
    assert_string_equal(ef->entries[0].name, "default/vllm-0");
    assert_string_equal(ef->entries[0].address, "10.0.0.1:8000");
    assert_string_equal(ef->entries[0].labels, "llm-d.ai/role=decode");
    assert_string_equal(ef->entries[1].name, "prod/vllm-1");
    assert_string_equal(ef->entries[1].address, "10.0.0.2:8001");
    assert_string_equal(ef->entries[1].labels, "");
    assert_string_equal(ef->entries[2].address, "[::1]:9000");
    llmd_endpoints_file_free(ef);

    /* JSON is YAML */
    ef = parse("{\"endpoints\":[{\"name\":\"a\",\"address\":\"127.0.0.2\","
               "\"port\":\"80\"}]}", 16);
    assert_non_null(ef);
    assert_int_equal(ef->n, 1);
    assert_string_equal(ef->entries[0].address, "127.0.0.2:80");
    llmd_endpoints_file_free(ef);

    /* no list: no endpoints, as llm-d */
    ef = parse("endpoints: []\n", 16);
    assert_non_null(ef);
    assert_int_equal(ef->n, 0);
    llmd_endpoints_file_free(ef);
}


static void
test_file_bad_entries_skipped(void **state)
{
    llmd_endpoints_file_t  *ef;

    ef = parse("endpoints:\n"
               "- name: ok\n"
               "  address: 10.0.0.1\n"
               "  port: \"8000\"\n"
               "- name: badaddr\n"
               "  address: vllm.example\n"
               "  port: \"8000\"\n"
               "- name: badport\n"
               "  address: 10.0.0.3\n"
               "  port: \"0\"\n"
               "- name: noport\n"
               "  address: 10.0.0.4\n"
               "- address: 10.0.0.5\n"
               "  port: \"1\"\n"
               "- name: ok\n"
               "  address: 10.0.0.6\n"
               "  port: \"1\"\n"
               "- name: badlabel\n"
               "  address: 10.0.0.7\n"
               "  port: \"1\"\n"
               "  labels: {\"a b\": c}\n"
               "- just a string\n"
               "- name: ok2\n"
               "  address: 10.0.0.8\n"
               "  port: 65535\n", 16);

    assert_non_null(ef);
    assert_int_equal(ef->n, 2);
    assert_int_equal(ef->skipped, 7);
    assert_string_equal(ef->entries[0].address, "10.0.0.1:8000");
    assert_string_equal(ef->entries[1].address, "10.0.0.8:65535");
    /* the first skip, with its line */
    assert_non_null(strstr(ef->warning, "eps.yaml:5:"));
    assert_non_null(strstr(ef->warning, "vllm.example"));
    llmd_endpoints_file_free(ef);
}


static void
test_file_limit(void **state)
{
    llmd_endpoints_file_t  *ef;

    ef = parse("endpoints:\n"
               "- {name: a, address: 10.0.0.1, port: 1}\n"
               "- {name: b, address: 10.0.0.2, port: 1}\n"
               "- {name: c, address: 10.0.0.3, port: 1}\n", 2);
    assert_non_null(ef);
    assert_int_equal(ef->n, 2);
    assert_int_equal(ef->skipped, 1);
    assert_non_null(strstr(ef->warning, "more than 2 endpoints"));
    llmd_endpoints_file_free(ef);
}


static void
test_file_errors(void **state)
{
    char  path[] = "/tmp/llmd-eps-XXXXXX";
    int   fd;

    assert_null(parse("", 16));
    assert_non_null(strstr(err, "empty"));

    assert_null(parse("endpoints: [\n", 16));
    assert_non_null(strstr(err, "YAML syntax error"));

    assert_null(parse("- a\n- b\n", 16));
    assert_non_null(strstr(err, "is a mapping"));

    assert_null(parse("endpoints: {a: b}\n", 16));
    assert_non_null(strstr(err, "eps.yaml:1: \"endpoints\" must be a list"));

    assert_null(llmd_endpoints_file_load("/nonexistent/eps.yaml", 16, err,
                                         sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/eps.yaml: cannot open"));

    /* over 1 MiB */
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, LLMD_ENDPOINTS_FILE_MAX_BYTES + 1), 0);
    close(fd);
    assert_null(llmd_endpoints_file_load(path, 16, err, sizeof(err)));
    assert_non_null(strstr(err, "larger than"));
    unlink(path);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_labels_parse),
        cmocka_unit_test(test_labels_add),
        cmocka_unit_test(test_file_entries),
        cmocka_unit_test(test_file_bad_entries_skipped),
        cmocka_unit_test(test_file_limit),
        cmocka_unit_test(test_file_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
