# src/kv: vLLM KV events into the precise index (docs/kv-events.md): the
# event decoders (msgpack-c's tree, the direct reader), llm-d xxh64 request keys, the shared-memory index, the
# rules of a pod's event stream and where a pod's events come from.
# Plain C on top of src/core.
#   make build/unit/test_kv_events build/unit/test_kv_index
#   make build/unit/test_kv_stream && build/unit/test_kv_stream
#   make build/bin/llmd-bench-kv && build/bin/llmd-bench-kv
KV_OBJS := $(addprefix kv/,llmd_kv_events llmd_kv_reader llmd_kv_keys \
    llmd_kv_index llmd_kv_stream llmd_kv_pod)
KV_LIBS := -lmsgpackc
# what the index is laid out in
KV_CORE_OBJS := core/llmd_index_region

UNIT_TESTS += test_kv_events test_kv_index test_kv_stream

UNIT_DEPS_test_kv_events := kv/llmd_kv_events kv/llmd_kv_reader
UNIT_LIBS_test_kv_events := $(KV_LIBS)
UNIT_DEPS_test_kv_index  := $(KV_OBJS) $(KV_CORE_OBJS)
UNIT_LIBS_test_kv_index  := $(KV_LIBS)
UNIT_DEPS_test_kv_stream := kv/llmd_kv_stream kv/llmd_kv_pod

TOOLS += $(BUILD)/bin/llmd-bench-kv

$(BUILD)/bin/llmd-bench-kv: bench/kv-ingest.c bench/kv_bench_util.h \
    $(call objs,$(KV_OBJS) $(KV_CORE_OBJS)) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $(filter-out %.h,$^) -o $@ $(CORE_LIBS) $(KV_LIBS)

# the end-to-end benchmark's publisher (bench/kv-helper.sh)
TOOLS += $(BUILD)/bin/llmd-bench-kv-pub

$(BUILD)/bin/llmd-bench-kv-pub: bench/kv-publish.c bench/kv_bench_util.h \
    | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $< -o $@ -lzmq -lmsgpackc -lcjson -lpthread

# the direct KV-batch reader held to msgpack-c's tree (docs/kv-events.md)
UNIT_TESTS += test_kv_diff
UNIT_DEPS_test_kv_diff := kv/llmd_kv_events kv/llmd_kv_reader
UNIT_LIBS_test_kv_diff := $(KV_LIBS)

# the scheduling benchmark's stand-in subscriber for experiments without
# llmd_kv_events (bench/scheduling.sh, KV_DRAIN)
TOOLS += $(BUILD)/bin/llmd-bench-kv-drain

$(BUILD)/bin/llmd-bench-kv-drain: bench/kv-drain.c bench/kv_bench_util.h \
    | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $< -o $@ -lzmq
