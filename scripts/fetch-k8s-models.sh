#!/bin/sh
# The npm packages of tools/validate-k8s.js, pinned, in .cache/npm-k8s/:
#   kubernetes-models: the Kubernetes API schemas as validators (4.x runs on
#   Debian 12's node 18; 5.x wants node 22), yaml: the YAML parser.
# Prints the cache directory on success.
exec "$(dirname "$0")/fetch-npm.sh" npm-k8s kubernetes-models@4.5.1 \
    yaml@2.9.1
