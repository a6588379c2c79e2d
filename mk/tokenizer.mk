# The byte-level BPE tokenizer (docs/tokenizer.md): core objects, its cmocka
# unit test and the llmd-tokenize CLI used by t/040-tokenizer.t.
TOKENIZER_OBJS := llmd_tokenizer_load llmd_tokenizer_table \
    llmd_tokenizer_bpe llmd_tokenizer_pretok llmd_tokenizer_added \
    llmd_tokenizer_encode llmd_tokenizer_decode
TOKENIZER_LIBS := -lpcre2-8 -lutf8proc

UNIT_TESTS += test_tokenizer
UNIT_DEPS_test_tokenizer := $(TOKENIZER_OBJS)
UNIT_LIBS_test_tokenizer := $(TOKENIZER_LIBS)

TOOLS += $(BUILD)/bin/llmd-tokenize

$(BUILD)/bin/llmd-tokenize: tools/llmd-tokenize.c \
    $(addprefix $(BUILD)/obj/,$(addsuffix .o,$(TOKENIZER_OBJS))) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS) $(TOKENIZER_LIBS)

TOOLS += $(BUILD)/bin/llmd-tokenizer-bench

$(BUILD)/bin/llmd-tokenizer-bench: bench/tokenizer-bench.c \
    $(addprefix $(BUILD)/obj/,$(addsuffix .o,$(TOKENIZER_OBJS))) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS) $(TOKENIZER_LIBS)
