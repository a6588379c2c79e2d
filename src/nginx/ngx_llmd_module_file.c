/*
 * The file this module's code was loaded from, checked on every
 * configuration load.
 *
 * A reload does not load a new build of the module from the same path:
 * nginx's dlopen() of a path already loaded returns the loaded copy, so
 * the old code keeps running (only a restart, or a binary upgrade, reads
 * the file again). An operator who replaced the file and reloaded is told
 * so, once per reload. A new build loaded under another path does run
 * (the module is linked with -Bsymbolic, see config), with zones of its
 * own: nginx keeps a zone across a reload only for the same module.
 */

#include "nginx/ngx_llmd.h"

#include <dlfcn.h>


ngx_int_t
ngx_llmd_module_file_check(ngx_conf_t *cf)
{
    /* the file as this code first saw it: kept across reloads, as the
       loaded code is */
    static dev_t       loaded_dev;
    static ino_t       loaded_ino;
    static ngx_uint_t  loaded_known;

    Dl_info      info;
    struct stat  st;

    if (dladdr(&ngx_http_llmd_module, &info) == 0
        || info.dli_fname == NULL)
    {
        return NGX_OK;
    }

    if (stat(info.dli_fname, &st) == -1) {
        if (loaded_known) {
            ngx_log_error(NGX_LOG_WARN, cf->log, ngx_errno,
                          "ngx_http_llmd_module: \"%s\" is gone since "
                          "nginx loaded it; this configuration runs the "
                          "loaded code", info.dli_fname);
        }

        return NGX_OK;
    }

    if (!loaded_known) {
        loaded_dev = st.st_dev;
        loaded_ino = st.st_ino;
        loaded_known = 1;
        return NGX_OK;
    }

    if (st.st_dev != loaded_dev || st.st_ino != loaded_ino) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "ngx_http_llmd_module: \"%s\" was replaced since "
                      "nginx loaded it; a reload keeps the loaded code: "
                      "restart nginx (or load the new file under another "
                      "name) to run the new one", info.dli_fname);
    }

    return NGX_OK;
}
