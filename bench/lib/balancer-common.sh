# Shared by bench/balancer.sh and bench/balancer-ab.sh (sourced): the static
# backends both put behind nginx, and the requests both send.

# static_backends DIR FIRST_PORT COUNT: DIR/nginx.conf of one nginx worker
# answering on 127.0.0.1:FIRST_PORT+1 .. +COUNT (a short 200 for any POST,
# vLLM-style /metrics); BACKEND_SERVERS[i] is the upstream line of the i-th.
static_backends() {
  local dir=$1 first=$2 count=$3 i port backs=""
  BACKEND_SERVERS=()
  for i in $(seq "$count"); do
    port=$((first + i))
    backs+="    server { listen 127.0.0.1:$port; location / { return 200 'ok $i\n'; }
      location = /metrics { return 200 'vllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0.$i\n'; } }
"
    BACKEND_SERVERS+=("server 127.0.0.1:$port;")
  done
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1; daemon on; pid $dir/nginx.pid; error_log $dir/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
$backs}
CONF
}

# completions_lua FILE PROMPTS [SHARED_HEAD]: a wrk script POSTing 32 KB
# completions prompts, PROMPTS distinct ones in turn told apart by their
# first bytes (0: a new one each time); SHARED_HEAD=1: by bytes 16320-16327
# of the prompt, in block 255 of 64 bytes, the last of the 256 the
# default profile hashes: all share the 255 blocks before (a long system
# prompt)
completions_lua() {
  sed -e "s/@PROMPTS@/$2/" -e "s/@SHARED_HEAD@/${3:-0}/" > "$1" <<'LUA'
local base = string.rep("The quick brown fox jumps over the lazy dog. ", 745)
local n = 0
local m = @PROMPTS@
local shared_head = @SHARED_HEAD@ == 1
request = function()
  n = n + 1
  local id = string.format("%08d", m > 0 and n % m or n)
  local p = shared_head
    and string.sub(base, 1, 16320) .. id .. string.sub(base, 16321)
    or id .. " " .. base
  local body = '{"model":"meta-llama/Llama-3.1-8B-Instruct","max_tokens":16,"prompt":"' .. p .. '"}'
  return wrk.format("POST", "/v1/completions", {["Content-Type"]="application/json"}, body)
end
LUA
}
