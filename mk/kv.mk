# Precise prefix-cache routing, pure C parts (docs/kv-events.md): the vLLM
# KV-event decoder, llm-d xxh64 request keys, the shared-memory precise index,
# their cmocka unit tests and the ingest benchmark.
#   make build/unit/test_kv_events build/unit/test_kv_index
#   make build/bin/llmd-bench-kv && build/bin/llmd-bench-kv
KV_OBJS := llmd_kv_events llmd_kv_keys llmd_kv_index
KV_LIBS := -lmsgpackc

UNIT_TESTS += test_kv_events test_kv_index

UNIT_DEPS_test_kv_events := llmd_kv_events
UNIT_LIBS_test_kv_events := $(KV_LIBS)
UNIT_DEPS_test_kv_index  := $(KV_OBJS)
UNIT_LIBS_test_kv_index  := $(KV_LIBS)

TOOLS += $(BUILD)/bin/llmd-bench-kv

$(BUILD)/bin/llmd-bench-kv: bench/kv-ingest.c \
    $(addprefix $(BUILD)/obj/,$(addsuffix .o,$(KV_OBJS))) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS) $(KV_LIBS)
