# llmd-loadgen, the open-loop load generator for OpenAI-compatible servers
# (loadgen/, docs/benchmark.md), and the scheduling benchmark built on it
# (bench/scheduling.sh): simulated pods behind nginx with every balancer.
#   make build/bin/llmd-loadgen
#   make bench-quick      (< 5 minutes)    make bench   (< 30 minutes)
#   make bench-steady     make bench-throughput     make bench-sweep
#   make bench-sweep-pairs (precise against default over PAIRS=6 sweeps)
#   make bench-bursts     (group bursts of shared-prefix siblings)
#   make bench-pd         (P/D against aggregated, about 15 minutes)
#   make bench-overload   (overload with and without flow control, ~5 min)
#   make bench-guide      (llm-d's inference-scheduling guide: 8 pods,
#                          round robin against llm-d's default; beside the
#                          guide's table with SEED_GUIDE=<its README.md>)
LOADGEN_SRCS := $(wildcard loadgen/*.c)
LOADGEN_OBJS := $(patsubst loadgen/%.c,$(BUILD)/loadgen/%.o,$(LOADGEN_SRCS))
# YAML accessors for the config (core), the tokenizer for counting
LOADGEN_CORE := core/llmd_yaml core/llmd_common $(TOKENIZER_OBJS)

TOOLS += $(BUILD)/bin/llmd-loadgen $(BUILD)/bin/llmd-stamp-server

$(BUILD)/loadgen:
	mkdir -p $@

$(BUILD)/loadgen/%.o: loadgen/%.c $(wildcard loadgen/*.h src/*/*.h) \
    | $(BUILD)/loadgen
	$(CC) $(CORE_CFLAGS) -Iloadgen -c $< -o $@

$(BUILD)/bin/llmd-loadgen: $(LOADGEN_OBJS) \
    $(call objs,$(LOADGEN_CORE)) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS) $(TOKENIZER_LIBS)

# The server t/070-loadgen.t checks loadgen's arrivals with: it takes the
# kernel's receive timestamps, which a loaded machine does not delay.
$(BUILD)/bin/llmd-stamp-server: tools/llmd-stamp-server.c | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $< -o $@

# Unit tests of the pure parts: the HTTP/1.1 reply parser, the SSE parser,
# the arrival schedule (drained stages too) and, for the inference-perf-v0.2
# mode, its load timers, line stamps and decoded text.  Their objects are in
# build/loadgen/, not build/obj/, so they are prerequisites here rather than
# UNIT_DEPS.
UNIT_TESTS += test_lg_http test_lg_sse test_lg_arrivals test_lg_iptimer \
    test_lg_lines test_lg_text
UNIT_DEPS_test_lg_http :=
UNIT_DEPS_test_lg_sse :=
UNIT_DEPS_test_lg_arrivals :=
UNIT_DEPS_test_lg_iptimer :=
UNIT_DEPS_test_lg_lines :=
UNIT_DEPS_test_lg_text :=
$(BUILD)/unit/test_lg_http: $(BUILD)/loadgen/lg_http.o
$(BUILD)/unit/test_lg_sse: $(BUILD)/loadgen/lg_sse.o
$(BUILD)/unit/test_lg_arrivals: $(BUILD)/loadgen/lg_arrivals.o \
    $(BUILD)/loadgen/lg_iptimer.o $(BUILD)/loadgen/lg_rng.o
$(BUILD)/unit/test_lg_iptimer: $(BUILD)/loadgen/lg_iptimer.o \
    $(BUILD)/loadgen/lg_rng.o
$(BUILD)/unit/test_lg_lines: $(BUILD)/loadgen/lg_lines.o \
    $(BUILD)/loadgen/lg_sse.o
$(BUILD)/unit/test_lg_text: $(BUILD)/loadgen/lg_text.o

.PHONY: bench bench-quick bench-steady bench-throughput bench-sweep bench-pd \
    bench-overload bench-bursts bench-guide bench-sweep-pairs
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
bench-sweep-pairs: deps all
	bench/sweep-pairs.sh
bench-pd: deps all
	bench/scheduling.sh pd
bench-overload: deps all
	bench/scheduling.sh overload
bench-bursts: deps all
	bench/scheduling.sh bursts precise default round-robin
bench-guide: deps all
	bench/scheduling.sh guide
