/*
 * ngx_http_llmd_module: llm-d inference scheduling inside nginx upstream
 * peer selection. This file holds the module definition, the directives and
 * the configuration structs with their defaults (applied in one place per
 * struct); the balancer, helper process, shared memory and status page live
 * in src/nginx/, the plain-C layers they use in src/core, src/kv and
 * src/tokenizer (docs/architecture.md).
 */

#include "nginx/ngx_llmd.h"
#include "core/llmd_endpoints_file.h"


static void *ngx_http_llmd_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_llmd_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_llmd_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_llmd_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_llmd_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_llmd_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_llmd_init_process(ngx_cycle_t *cycle);
static void ngx_http_llmd_exit_process(ngx_cycle_t *cycle);
static char *ngx_http_llmd_balancer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_llmd_load_config(ngx_conf_t *cf,
    ngx_llmd_srv_conf_t *lcf);
static void ngx_http_llmd_free_config(void *data);
static char *ngx_http_llmd_kv_events(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llmd_server_labels(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_llmd_endpoints(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_llmd_source_add(ngx_conf_t *cf,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_source_t *src);
static ngx_int_t ngx_http_llmd_epp_discovery(ngx_conf_t *cf,
    ngx_llmd_srv_conf_t *lcf);
static ngx_int_t ngx_http_llmd_init_sources(ngx_conf_t *cf,
    ngx_llmd_srv_conf_t *lcf);


static ngx_command_t  ngx_http_llmd_commands[] = {

    { ngx_string("llmd_balancer"),
      NGX_HTTP_UPS_CONF|NGX_CONF_ANY,
      ngx_http_llmd_balancer,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmd_endpoints"),
      NGX_HTTP_UPS_CONF|NGX_CONF_2MORE,
      ngx_http_llmd_endpoints,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmd_server_labels"),
      NGX_HTTP_UPS_CONF|NGX_CONF_2MORE,
      ngx_http_llmd_server_labels,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmd_metrics"),
      NGX_HTTP_UPS_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_llmd_srv_conf_t, metrics),
      NULL },

    { ngx_string("llmd_metrics_uri"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_llmd_srv_conf_t, metrics_uri),
      NULL },

    { ngx_string("llmd_metrics_interval"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_llmd_srv_conf_t, metrics_interval),
      NULL },

    { ngx_string("llmd_metrics_timeout"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_llmd_srv_conf_t, metrics_timeout),
      NULL },

    { ngx_string("llmd_metrics_stale"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_llmd_srv_conf_t, metrics_stale),
      NULL },

    { ngx_string("llmd_inflight"),
      NGX_HTTP_UPS_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_llmd_srv_conf_t, inflight),
      NULL },

    { ngx_string("llmd_metrics_buffer"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_llmd_srv_conf_t, metrics_buffer),
      NULL },

    { ngx_string("llmd_body_limit"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_llmd_srv_conf_t, body_limit),
      NULL },

    { ngx_string("llmd_tokenize_limit"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_llmd_srv_conf_t, tokenize_limit),
      NULL },

    { ngx_string("llmd_tokenizer_cache"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE12,
      ngx_llmd_tokenizer_cache_conf,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmd_tokenizer"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_llmd_srv_conf_t, tokenizer_path),
      NULL },

    { ngx_string("llmd_kv_events"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_llmd_kv_events,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmd_kv_speculative"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_llmd_srv_conf_t, kv_speculative),
      NULL },

    { ngx_string("llmd_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_llmd_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmd_json_errors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llmd_loc_conf_t, json_errors),
      NULL },

    { ngx_string("llmd_admission"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_llmd_admission,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmd_objective"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE2,
      ngx_llmd_objective,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmd_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_llmd_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_llmd_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_llmd_postconfiguration,       /* postconfiguration */

    ngx_http_llmd_create_main_conf,        /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_llmd_create_srv_conf,         /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_llmd_create_loc_conf,         /* create location configuration */
    ngx_http_llmd_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_llmd_module = {
    NGX_MODULE_V1,
    &ngx_http_llmd_module_ctx,             /* module context */
    ngx_http_llmd_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_llmd_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_llmd_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_llmd_create_main_conf(ngx_conf_t *cf)
{
    ngx_llmd_main_conf_t  *lmcf;

    lmcf = ngx_pcalloc(cf->pool, sizeof(ngx_llmd_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&lmcf->upstreams, cf->pool, 4,
                       sizeof(ngx_llmd_srv_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return lmcf;
}


static void *
ngx_http_llmd_create_srv_conf(ngx_conf_t *cf)
{
    ngx_llmd_srv_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_llmd_srv_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     lcf->enabled = 0;
     *     lcf->config_file = { 0, NULL };
     *     lcf->metrics_uri = { 0, NULL };
     */

    if (ngx_array_init(&lcf->sources, cf->pool, 1, sizeof(ngx_llmd_source_t))
        != NGX_OK)
    {
        return NULL;
    }

    lcf->zone_size = NGX_CONF_UNSET;
    lcf->metrics = NGX_CONF_UNSET;
    lcf->metrics_interval = NGX_CONF_UNSET_MSEC;
    lcf->metrics_timeout = NGX_CONF_UNSET_MSEC;
    lcf->metrics_stale = NGX_CONF_UNSET_MSEC;
    lcf->metrics_buffer = NGX_CONF_UNSET_SIZE;
    lcf->inflight = NGX_CONF_UNSET;
    lcf->body_limit = NGX_CONF_UNSET_SIZE;
    lcf->tokenize_limit = NGX_CONF_UNSET_SIZE;
    lcf->tokenizer_cache = NGX_CONF_UNSET_SIZE;
    lcf->kv_speculative = NGX_CONF_UNSET_MSEC;

    return lcf;
}


static void *
ngx_http_llmd_create_loc_conf(ngx_conf_t *cf)
{
    ngx_llmd_loc_conf_t  *llcf;

    llcf = ngx_pcalloc(cf->pool, sizeof(ngx_llmd_loc_conf_t));
    if (llcf == NULL) {
        return NULL;
    }

    llcf->json_errors = NGX_CONF_UNSET;

    return llcf;
}


static char *
ngx_http_llmd_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_llmd_loc_conf_t  *prev = parent;
    ngx_llmd_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->json_errors, prev->json_errors, 0);

    if (conf->flow == NULL) {
        conf->flow = prev->flow;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_llmd_postconfiguration(ngx_conf_t *cf)
{
    if (ngx_llmd_module_file_check(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_llmd_add_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_llmd_decide_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_llmd_inflight_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_llmd_flow_postconfiguration(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_llmd_body_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_llmd_reject_init(cf);
}


static ngx_int_t
ngx_http_llmd_init_process(ngx_cycle_t *cycle)
{
    if (ngx_llmd_precise_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_llmd_helper_init_process(cycle);
}


static void
ngx_http_llmd_exit_process(ngx_cycle_t *cycle)
{
    ngx_llmd_helper_exit_process(cycle);
}


/* llmd_balancer [config=FILE] [zone=SIZE]; */

static char *
ngx_http_llmd_balancer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llmd_srv_conf_t  *lcf = conf;

    ssize_t                        size;
    ngx_str_t                     *value, s;
    ngx_uint_t                     i;
    ngx_llmd_srv_conf_t          **slot;
    ngx_llmd_main_conf_t          *lmcf;
    ngx_http_upstream_srv_conf_t  *uscf;

    if (lcf->enabled) {
        return "is duplicate";
    }

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "load balancing method redefined; "
                           "\"llmd_balancer\" must come before "
                           "\"keepalive\" and replaces other methods");
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "config=", 7) == 0) {
            lcf->config_file.len = value[i].len - 7;
            lcf->config_file.data = value[i].data + 7;

            if (lcf->config_file.len == 0) {
                return "has an empty \"config=\" parameter";
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            s.len = value[i].len - 5;
            s.data = value[i].data + 5;

            size = ngx_parse_size(&s);
            if (size == NGX_ERROR || size < (ssize_t) (64 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\" "
                                   "(at least %uz bytes)",
                                   &s, 64 * ngx_pagesize);
                return NGX_CONF_ERROR;
            }

            lcf->zone_size = size;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_llmd_load_config(cf, lcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    lcf->enabled = 1;
    lcf->upstream = uscf;

    uscf->peer.init_upstream = ngx_http_llmd_init_upstream;
    uscf->flags = NGX_HTTP_UPSTREAM_CREATE
                  |NGX_HTTP_UPSTREAM_WEIGHT
                  |NGX_HTTP_UPSTREAM_MAX_CONNS
                  |NGX_HTTP_UPSTREAM_MAX_FAILS
                  |NGX_HTTP_UPSTREAM_FAIL_TIMEOUT
                  |NGX_HTTP_UPSTREAM_DOWN;

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_llmd_module);

    slot = ngx_array_push(&lmcf->upstreams);
    if (slot == NULL) {
        return NGX_CONF_ERROR;
    }

    *slot = lcf;

    if (ngx_llmd_helper_add_path(cf, lmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Once the whole upstream block is read. upstream{} blocks are not merged:
 * every default of the srv conf is applied here, then the balancer is set
 * up with them.
 */
static ngx_int_t
ngx_http_llmd_init_upstream(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us)
{
    ngx_llmd_srv_conf_t  *lcf;

    lcf = ngx_http_conf_upstream_srv_conf(us, ngx_http_llmd_module);

    ngx_conf_init_value(lcf->zone_size, NGX_LLMD_DEFAULT_ZONE_SIZE);
    ngx_conf_init_value(lcf->metrics, 1);
    ngx_conf_init_msec_value(lcf->metrics_interval, 50);
    ngx_conf_init_msec_value(lcf->metrics_timeout, 1000);
    ngx_conf_init_msec_value(lcf->metrics_stale, 2000);
    ngx_conf_init_size_value(lcf->metrics_buffer, 512 * 1024);
    ngx_conf_init_value(lcf->inflight, 1);
    ngx_conf_init_size_value(lcf->body_limit, 8 * 1024 * 1024);
    ngx_conf_init_size_value(lcf->tokenize_limit, 128 * 1024);
    ngx_conf_init_size_value(lcf->tokenizer_cache, 16 * 1024 * 1024);
    if (lcf->kv_speculative == NGX_CONF_UNSET_MSEC) {
        /* as the configuration's precise-prefix-cache-producer says */
        lcf->kv_speculative = (lcf->has_prefix
                               && lcf->prefix.mode == LLMD_PREFIX_PRECISE
                               && lcf->prefix.speculative)
                              ? (ngx_msec_t) lcf->prefix.speculative_ttl_ms
                              : 0;
    }

    if (lcf->metrics_uri.len == 0) {
        ngx_str_set(&lcf->metrics_uri, "/metrics");
    }

    if (lcf->has_prefix && lcf->prefix.mode == LLMD_PREFIX_PRECISE) {
        if (lcf->kv_mode == NGX_LLMD_KV_UNSET) {
            /* kvEventsConfig.zmqEndpoint: pods connect to us (llm-d's) */
            lcf->kv_mode = NGX_LLMD_KV_BIND;
            lcf->kv_peer_check = 1;
        }

        if (lcf->kv_mode == NGX_LLMD_KV_BIND && lcf->kv_endpoint.len == 0) {
            lcf->kv_endpoint.len = ngx_strlen(lcf->prefix.zmq_endpoint);
            lcf->kv_endpoint.data = (u_char *) lcf->prefix.zmq_endpoint;
        }
    }

    if (lcf->metrics_interval < 10) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "llmd_metrics_interval must be at least 10ms "
                           "in upstream \"%V\"", &us->host);
        return NGX_ERROR;
    }

    if (lcf->metrics_buffer < 4096) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "llmd_metrics_buffer must be at least 4k "
                           "in upstream \"%V\"", &us->host);
        return NGX_ERROR;
    }

    if (ngx_http_llmd_init_sources(cf, lcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_llmd_balancer_init(cf, us, lcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_llmd_flow_init(cf, lcf);
}


static ngx_int_t
ngx_http_llmd_load_config(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf)
{
    char                     err[LLMD_ERRLEN];
    ngx_uint_t               i;
    ngx_pool_cleanup_t      *cln;
    const llmd_plugin_t     *prefix;
    const llmd_profile_t    *profile;

    if (lcf->config_file.len) {
        if (ngx_conf_full_name(cf->cycle, &lcf->config_file, 1) != NGX_OK) {
            return NGX_ERROR;
        }

        /* ngx_conf_full_name() leaves the result NUL-terminated */
        lcf->cf = llmd_config_load_file((char *) lcf->config_file.data,
                                        err, sizeof(err));

    } else {
        lcf->cf = llmd_config_default(err, sizeof(err));
    }

    if (lcf->cf == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "llmd_balancer: %s", err);
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        llmd_config_free(lcf->cf);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_llmd_free_config;
    cln->data = lcf->cf;

    for (i = 0; i < lcf->cf->nwarnings; i++) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0, "llmd_balancer: %s",
                           lcf->cf->warnings[i]);
    }

    profile = llmd_config_primary_profile(lcf->cf);
    if (profile == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "llmd_balancer: %s has no scheduling profile",
                           lcf->cf->file);
        return NGX_ERROR;
    }

    lcf->profile = profile;

    if (ngx_llmd_decide_conf(cf, lcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (lcf->cf->discovery && ngx_http_llmd_epp_discovery(cf, lcf) != NGX_OK) {
        return NGX_ERROR;
    }

    lcf->inflight_producer = llmd_config_inflight_producer(lcf->cf);

    /* a prefix-cache scorer, or prefix-cache-affinity-filter's producer */
    prefix = llmd_profile_prefix_plugin(lcf->cf, profile);
    if (prefix == NULL) {
        return NGX_OK;
    }

    lcf->has_prefix = 1;
    lcf->prefix = prefix->u.prefix;
    lcf->approx = prefix->u.prefix;

    if (lcf->prefix.mode == LLMD_PREFIX_PRECISE) {
        /*
         * Precise scoring (KV events) is set up once the whole upstream
         * block is read (llmd_tokenizer may follow); the approximate index
         * keeps learning from routed traffic with llm-d's defaults, for
         * pods whose event stream is not live.
         */
        llmd_prefix_params_approximate(&lcf->approx);
    }

    return NGX_OK;
}


/*
 * llmd_kv_events off;
 * llmd_kv_events bind [ENDPOINT] [peers=any];
 * llmd_kv_events connect [port=N|port=+N] [replay=N|replay=+N];
 */
static char *
ngx_http_llmd_kv_events(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llmd_srv_conf_t  *lcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, v;
    ngx_uint_t   i, *port, *relative;

    if (lcf->kv_mode != NGX_LLMD_KV_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0 && cf->args->nelts == 2) {
        lcf->kv_mode = NGX_LLMD_KV_OFF;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "bind") == 0) {
        lcf->kv_mode = NGX_LLMD_KV_BIND;
        lcf->kv_peer_check = 1;

        for (i = 2; i < cf->args->nelts; i++) {
            if (ngx_strcmp(value[i].data, "peers=any") == 0) {
                lcf->kv_peer_check = 0;
                continue;
            }

            if (lcf->kv_endpoint.len == 0
                && ngx_strstr(value[i].data, "://") != NULL)
            {
                lcf->kv_endpoint = value[i];
                continue;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" (a ZeroMQ endpoint "
                               "such as tcp://*:5557, or peers=any)",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "connect") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid mode \"%V\", "
                           "expected \"bind\", \"connect\" or \"off\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->kv_mode = NGX_LLMD_KV_CONNECT;
    lcf->kv_port = 5557;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "port=", 5) == 0) {
            v.data = value[i].data + 5;
            v.len = value[i].len - 5;
            port = &lcf->kv_port;
            relative = &lcf->kv_port_relative;

        } else if (ngx_strncmp(value[i].data, "replay=", 7) == 0) {
            v.data = value[i].data + 7;
            v.len = value[i].len - 7;
            port = &lcf->kv_replay_port;
            relative = &lcf->kv_replay_relative;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        /* "+N": the server's own port plus N (several pods on one host) */
        *relative = 0;
        if (v.len && v.data[0] == '+') {
            *relative = 1;
            v.data++;
            v.len--;
        }

        n = ngx_atoi(v.data, v.len);
        if (n == NGX_ERROR || n < 1 || n > 65535) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid port in \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        *port = (ngx_uint_t) n;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_llmd_free_config(void *data)
{
    llmd_config_free(data);
}


/*
 * llmd_server_labels ADDRESS k=v[,k=v...] [k=v ...];
 *
 * Labels of the `server` whose address (as written, or one ip:port it
 * resolved to) is ADDRESS, e.g. llm-d.ai/role=prefill; matched when the
 * balancer takes the servers (ngx_llmd_statics_init).
 */
static char *
ngx_http_llmd_server_labels(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llmd_srv_conf_t  *lcf = conf;

    char                       err[LLMD_ERRLEN];
    u_char                    *p;
    size_t                     len;
    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_llmd_server_labels_t  *sl;

    if (!lcf->enabled) {
        return "must come after \"llmd_balancer\"";
    }

    value = cf->args->elts;

    if (lcf->server_labels == NULL) {
        lcf->server_labels = ngx_array_create(cf->pool, 4,
                                     sizeof(ngx_llmd_server_labels_t));
        if (lcf->server_labels == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    sl = lcf->server_labels->elts;

    for (i = 0; i < lcf->server_labels->nelts; i++) {
        if (sl[i].address.len == value[1].len
            && ngx_strncmp(sl[i].address.data, value[1].data,
                           value[1].len) == 0)
        {
            return "is duplicate for this address";
        }
    }

    len = 0;

    for (i = 2; i < cf->args->nelts; i++) {
        len += value[i].len + 1;
    }

    p = ngx_pnalloc(cf->temp_pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    len = 0;

    for (i = 2; i < cf->args->nelts; i++) {
        if (i > 2) {
            p[len++] = ',';
        }

        ngx_memcpy(p + len, value[i].data, value[i].len);
        len += value[i].len;
    }

    sl = ngx_array_push(lcf->server_labels);
    if (sl == NULL) {
        return NGX_CONF_ERROR;
    }

    sl->address = value[1];
    sl->line = cf->conf_file->line;
    sl->used = 0;

    if (len == 0
        || llmd_labels_parse((char *) p, len, (char *) sl->labels, err,
                             sizeof(err))
           != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid labels for "
                           "\"%V\": %s", &value[1],
                           len ? err : "none given");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * llmd_endpoints dns NAME port=N [interval=TIME] [labels=k=v,...];
 * llmd_endpoints file PATH [interval=TIME] [labels=k=v,...];
 *
 * The upstream may then have no `server` line: a placeholder without an
 * address keeps nginx's "no servers" check quiet, and the balancer skips
 * it.
 */
static char *
ngx_http_llmd_endpoints(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llmd_srv_conf_t  *lcf = conf;

    char                err[LLMD_ERRLEN];
    ngx_int_t           n;
    ngx_str_t          *value, v;
    ngx_uint_t          i;
    ngx_llmd_source_t  *src;

    if (!lcf->enabled) {
        return "must come after \"llmd_balancer\"";
    }

    if (lcf->sources.nelts == NGX_LLMD_MAX_SOURCES) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "at most %d "
                           "\"llmd_endpoints\" per upstream",
                           NGX_LLMD_MAX_SOURCES);
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    src = ngx_array_push(&lcf->sources);
    if (src == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(src, sizeof(ngx_llmd_source_t));
    src->interval = NGX_CONF_UNSET_MSEC;
    src->name = value[2];

    if (ngx_strcmp(value[1].data, "dns") == 0) {
        src->type = NGX_LLMD_SOURCE_DNS;

    } else if (ngx_strcmp(value[1].data, "file") == 0) {
        src->type = NGX_LLMD_SOURCE_FILE;

        if (ngx_conf_full_name(cf->cycle, &src->name, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid source \"%V\", "
                           "expected \"dns\" or \"file\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    for (i = 3; i < cf->args->nelts; i++) {

        if (src->type == NGX_LLMD_SOURCE_DNS
            && ngx_strncmp(value[i].data, "port=", 5) == 0)
        {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);
            if (n == NGX_ERROR || n < 1 || n > 65535) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid port in \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            src->port = (in_port_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "interval=", 9) == 0) {
            v.data = value[i].data + 9;
            v.len = value[i].len - 9;

            src->interval = ngx_parse_time(&v, 0);
            if (src->interval == (ngx_msec_t) NGX_ERROR
                || src->interval < 100)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid interval in \"%V\" (at least "
                                   "100ms)", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "labels=", 7) == 0) {
            if (llmd_labels_parse((char *) value[i].data + 7,
                                  value[i].len - 7, (char *) src->labels,
                                  err, sizeof(err))
                != 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid labels in "
                                   "\"%V\": %s", &value[i], err);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (src->type == NGX_LLMD_SOURCE_DNS && src->port == 0) {
        return "needs \"port=\" with \"dns\"";
    }

    if (src->type == NGX_LLMD_SOURCE_FILE && src->labels[0]) {
        return "takes labels from the file with \"file\"";
    }

    return ngx_http_llmd_source_add(cf, lcf, src) == NGX_OK
           ? NGX_CONF_OK : NGX_CONF_ERROR;
}


/*
 * A source pushed on lcf->sources gets its identity (the same source after
 * a reload keeps its endpoints); the first one adds the placeholder server.
 */
static ngx_int_t
ngx_http_llmd_source_add(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_source_t *src)
{
    u_char                         key[NGX_MAX_PATH + 64], *last;
    ngx_uint_t                     i;
    ngx_llmd_source_t             *all;
    ngx_http_upstream_server_t    *us;
    ngx_http_upstream_srv_conf_t  *uscf;

    last = ngx_snprintf(key, sizeof(key), "%ui %V %d", src->type, &src->name,
                        (int) src->port);
    src->key = ngx_crc32_short(key, last - key);
    if (src->key == 0) {
        src->key = 1;
    }

    all = lcf->sources.elts;

    for (i = 0; i + 1 < lcf->sources.nelts; i++) {
        if (all[i].key == src->key) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "endpoint source "
                               "\"%V\" is duplicate", &src->name);
            return NGX_ERROR;
        }
    }

    if (lcf->sources.nelts > 1) {
        return NGX_OK;
    }

    uscf = lcf->upstream ? lcf->upstream
           : ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    us = ngx_array_push(uscf->servers);
    if (us == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(us, sizeof(ngx_http_upstream_server_t));
    ngx_str_set(&us->name, "llmd_endpoints");

    return NGX_OK;
}


/*
 * The EndpointPickerConfig's dataLayer.discovery (file-discovery): a file
 * source. As llm-d, a file that cannot be loaded at start is an error, and
 * it is read again only with watchFile: true.
 */
static ngx_int_t
ngx_http_llmd_epp_discovery(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf)
{
    char                    err[LLMD_ERRLEN];
    ngx_llmd_source_t      *src;
    llmd_endpoints_file_t  *ef;

    src = ngx_array_push(&lcf->sources);
    if (src == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(src, sizeof(ngx_llmd_source_t));
    src->type = NGX_LLMD_SOURCE_FILE;
    src->name.data = (u_char *) lcf->cf->discovery->u.discovery.path;
    src->name.len = ngx_strlen(src->name.data);
    src->interval = lcf->cf->discovery->u.discovery.watch ? 1000 : 0;

    if (ngx_conf_full_name(cf->cycle, &src->name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ef = llmd_endpoints_file_load((char *) src->name.data, LLMD_MAX_ENDPOINTS,
                                  err, sizeof(err));
    if (ef == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "llmd_balancer: "
                           "file-discovery: %s", err);
        return NGX_ERROR;
    }

    llmd_endpoints_file_free(ef);

    return ngx_http_llmd_source_add(cf, lcf, src);
}


/* Source defaults, and DNS sources need a resolver in http{}. */
static ngx_int_t
ngx_http_llmd_init_sources(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf)
{
    ngx_uint_t                 i;
    ngx_llmd_source_t         *src;
    ngx_http_core_loc_conf_t  *clcf;

    src = lcf->sources.elts;

    for (i = 0; i < lcf->sources.nelts; i++) {
        ngx_conf_init_msec_value(src[i].interval,
                                 src[i].type == NGX_LLMD_SOURCE_DNS ? 5000
                                                                    : 1000);

        if (src[i].type != NGX_LLMD_SOURCE_DNS || lcf->resolver) {
            continue;
        }

        /* the http{} level core location: the upstream block's context */
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

        if (clcf->resolver == NULL || clcf->resolver->connections.nelts == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "upstream \"%V\": "
                               "\"llmd_endpoints dns\" needs a "
                               "\"resolver\" in http{}",
                               &lcf->upstream->host);
            return NGX_ERROR;
        }

        lcf->resolver = clcf->resolver;
        lcf->resolver_timeout = clcf->resolver_timeout
                                == NGX_CONF_UNSET_MSEC
                                ? 30000 : clcf->resolver_timeout;
    }

    return NGX_OK;
}
