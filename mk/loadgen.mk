# llmd-loadgen, the open-loop load generator for OpenAI-compatible servers
# (loadgen/, docs/benchmark.md), and the scheduling benchmark built on it
# (bench/scheduling.sh): simulated pods behind nginx with every balancer.
#   make build/bin/llmd-loadgen
#   make bench-quick      (< 5 minutes)    make bench   (< 30 minutes)
#   make bench-steady     make bench-throughput     make bench-sweep
LOADGEN_SRCS := $(wildcard loadgen/*.c)
LOADGEN_OBJS := $(patsubst loadgen/%.c,$(BUILD)/loadgen/%.o,$(LOADGEN_SRCS))
# YAML accessors for the config (core), the tokenizer for counting
LOADGEN_CORE := core/llmd_yaml core/llmd_common $(TOKENIZER_OBJS)

TOOLS += $(BUILD)/bin/llmd-loadgen

$(BUILD)/loadgen:
	mkdir -p $@

$(BUILD)/loadgen/%.o: loadgen/%.c loadgen/lg.h $(wildcard src/*/*.h) | $(BUILD)/loadgen
	$(CC) $(CORE_CFLAGS) -Iloadgen -c $< -o $@

$(BUILD)/bin/llmd-loadgen: $(LOADGEN_OBJS) \
    $(call objs,$(LOADGEN_CORE)) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS) $(TOKENIZER_LIBS)

.PHONY: bench bench-quick bench-steady bench-throughput bench-sweep
bench: deps all
	bench/scheduling.sh full
bench-quick: deps all
	bench/scheduling.sh quick
bench-steady: deps all
	bench/scheduling.sh steady
bench-throughput: deps all
	bench/scheduling.sh throughput
bench-sweep: deps all
	bench/scheduling.sh sweep
