# ngx_http_llmd_module: build, unit tests and the prove suite.
#   make          build/ngx_http_llmd_module.so and every tool
#   make test     install what is missing, build, run every test (prove -r t/)
#   make demo     the main job (after the simulator exists)
#   make test SAN=address
#                 the same built with ASan and UBSan in build-san/, then the
#                 unit tests, the tools' and the module's prove files on it
SHELL := /bin/bash
TOP   := $(abspath .)
BUILD := $(TOP)/build
CC    ?= cc

CORE_CFLAGS := -std=gnu11 -g -O2 -fPIC -Wall -Wextra -Werror \
               -Wno-unused-parameter -I$(TOP)/src -I/usr/include/cjson
CORE_LIBS   := -lcjson -lyaml -lxxhash -lm

# SAN=address: everything (plain-C layers, unit tests, tools, the nginx
# module) is compiled and linked with AddressSanitizer and UBSan; a UB
# report ends the process (no recovery), so it fails its test. The objects
# go to their own directory: `make test` and `make test SAN=address` can
# follow each other without mixing objects.
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all \
             -fno-omit-frame-pointer
ifeq ($(SAN),address)
BUILD       := $(TOP)/build-san
CORE_CFLAGS += $(SAN_FLAGS)
CORE_LIBS   += $(SAN_FLAGS)
MODULE_SAN  := $(SAN_FLAGS)
else ifneq ($(SAN),)
$(error SAN=$(SAN) is not supported (SAN=address is))
endif

# Each layer of src/ (docs/architecture.md) has its mk/<layer>.mk: the objects
# it builds (named by their path under src/, e.g. core/llmd_config), its unit
# tests in UNIT_TESTS and the objects a test links in UNIT_DEPS_<test>.
UNIT_TESTS :=
TOOLS      :=
objs = $(addprefix $(BUILD)/obj/,$(addsuffix .o,$(1)))

.PHONY: all module unit tools test deps clean demo
all: module unit tools

include mk/core.mk mk/kv.mk mk/tokenizer.mk mk/module.mk mk/sim.mk \
    mk/loadgen.mk mk/fuzz.mk

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) -c $< -o $@

$(BUILD)/unit $(BUILD)/bin:
	mkdir -p $@

# Relative names work too: make build/unit/test_prom,
# make build-san/unit/test_prom SAN=address
ifeq ($(patsubst $(TOP)/%,,$(BUILD)),)
$(patsubst $(TOP)/%,%,$(BUILD))/%: $(BUILD)/% ;
endif

# Keep objects made on the way to a relative target.
.SECONDARY:

define unit_rule
$(BUILD)/unit/$(1): t/unit/$(1).c $$(wildcard t/unit/*.h) \
    $$(call objs,$$(UNIT_DEPS_$(1))) | $(BUILD)/unit
	$$(CC) $$(CORE_CFLAGS) $$(filter-out %.h,$$^) -o $$@ -lcmocka $$(CORE_LIBS) $$(UNIT_LIBS_$(1))
endef
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_rule,$(t))))

unit: $(addprefix $(BUILD)/unit/,$(UNIT_TESTS))
tools: $(TOOLS)

deps:
	@scripts/deps.sh

# make test SAN=address: the unit tests, the simulator's and the load
# generator's prove files with their sanitized binaries, and the prove files
# that load the module with the sanitized module (TEST_NGINX_ASAN=1: nginx is
# started with the sanitizer runtimes preloaded, t/README.md; a feature of
# the project's Test::Nginx subset, hence TEST_NGINX_LITE=1). Not
# t/091-replicas.t: it starts a second nginx itself, without them. The
# prove files still take some fixtures from build/bin (vllm-sim as the fake
# pods, llmd-chat-render and llmd-tokenize for expected tokens): a plain
# build of the tools comes first.
SAN_PROVE ?= t/010-balancer.t t/011-body-buffers.t t/015-herding.t \
    t/020-helper.t t/030-config.t t/060-precise.t t/061-precise-sim.t \
    t/062-pd.t t/090-endpoints.t $(wildcard t/095-faults.t)

ifeq ($(SAN),address)
test: deps
	$(MAKE) all
	$(MAKE) SAN= BUILD=$(TOP)/build tools
	LLMD_UNIT_DIR=$(BUILD)/unit prove t/unit.t
	VLLM_SIM_BIN=$(BUILD)/bin/vllm-sim \
	    LLMD_LOADGEN_BIN=$(BUILD)/bin/llmd-loadgen \
	    prove t/050-sim.t t/070-loadgen.t
	TEST_NGINX_LITE=1 TEST_NGINX_ASAN=1 TEST_NGINX_LLMD_SO=$(MODULE_SO) \
	    prove $(SAN_PROVE)
else
test: deps
	$(MAKE) all fuzz
	prove -r t/
endif

demo: deps
	$(MAKE) all
	scripts/demo.sh

clean:
	rm -rf $(TOP)/build $(TOP)/build-san $(BUILD) t/servroot*
