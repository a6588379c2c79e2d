# The nginx dynamic module, built against Debian's nginx-dev with the same
# configure flags as Debian's nginx (its conf_flags), so the module's
# signature matches the installed binary. configure is re-run when the
# module's config file changes.
#
# MODULE_SAN (set by SAN=address in the Makefile) adds the sanitizer flags to
# the module's compile and link. Debian's nginx is not instrumented, so such
# a module only loads into an nginx started with the sanitizer runtimes
# preloaded (TEST_NGINX_ASAN=1 in the tests, t/README.md).
NGX_SRC := /usr/share/nginx/src
MODULE_SO := $(BUILD)/ngx_http_llmd_module.so
MODULE_SRCS := ngx_http_llmd_module.c $(wildcard src/*/*.c src/*/*.h)

module: $(MODULE_SO)

# configure starts from an empty directory: an interrupted or foreign earlier
# run must not leave a half-written ngx_auto_config.h behind.
$(BUILD)/nginx/Makefile: config
	rm -rf $(BUILD)/nginx
	mkdir -p $(BUILD)/nginx
	cd $(NGX_SRC) && . ./conf_flags && ./configure \
	  --with-cc-opt="-g -O2 -fPIC $(MODULE_SAN)" \
	  --with-ld-opt="-fPIC $(MODULE_SAN)" \
	  "$${NGX_CONF_FLAGS[@]}" \
	  --add-dynamic-module=$(TOP) --builddir=$(BUILD)/nginx > $(BUILD)/nginx/configure.log

$(MODULE_SO): $(BUILD)/nginx/Makefile $(MODULE_SRCS)
	$(MAKE) -f $(BUILD)/nginx/Makefile -C $(NGX_SRC) modules
	cp $(BUILD)/nginx/ngx_http_llmd_module.so $@
