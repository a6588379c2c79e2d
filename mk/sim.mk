# vllm-sim, the vLLM model-server simulator (docs/simulator.md), and its
# unit test of the KV-event bytes and block hashes.
#   make build/bin/vllm-sim
SIM_SRCS := $(wildcard sim/*.c)
SIM_OBJS := $(patsubst sim/%.c,$(BUILD)/sim/%.o,$(SIM_SRCS))
SIM_LIBS := -lzmq -lmsgpackc -lcbor -lcrypto -lcjson -lxxhash -lm
# the simulator tokenizes with the project's tokenizer and renders chat
# with its chat templates (src/tokenizer)
SIM_CORE := $(call objs,$(TOKENIZER_OBJS) $(CHAT_OBJS))

TOOLS += $(BUILD)/bin/vllm-sim $(BUILD)/bin/sim-loadgen

$(BUILD)/sim:
	mkdir -p $@

$(BUILD)/sim/%.o: sim/%.c sim/sim.h $(wildcard src/tokenizer/*.h) | $(BUILD)/sim
	$(CC) $(CORE_CFLAGS) -Isim -c $< -o $@

$(BUILD)/bin/vllm-sim: $(SIM_OBJS) $(SIM_CORE) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $(SIM_OBJS) $(SIM_CORE) -o $@ $(SIM_LIBS) \
	    $(TOKENIZER_LIBS) $(CORE_LIBS)

$(BUILD)/bin/sim-loadgen: bench/sim-loadgen.c | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $< -o $@ $(CORE_LIBS)

# The unit test links every simulator object but main.o.
UNIT_TESTS += test_sim_events
UNIT_DEPS_test_sim_events :=
UNIT_LIBS_test_sim_events = $(SIM_LIBS) $(TOKENIZER_LIBS)
$(BUILD)/unit/test_sim_events: $(filter-out $(BUILD)/sim/main.o,$(SIM_OBJS)) \
    $(SIM_CORE)
