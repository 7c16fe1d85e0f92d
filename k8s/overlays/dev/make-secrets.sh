#!/usr/bin/env sh
# Creates the development secrets in the current kube context with values generated here, once
# (kept in .tilt-secrets/, which git ignores). Never used for production.
#
# Profiles and matching sign in to their peers with service accounts. Its secret is the key
# service-client-secret of profiles-secrets, read from .tilt-secrets/profiles-service-client-secret
# (created empty here). Once identity runs, create the account (docs/deploy.md, "Profiles' service
# account"), write its client_secret to that file, set its id as TT_SERVICE_CLIENT_ID in
# k8s/base/profiles/configmap.yaml (a local edit: the id differs per cluster) and run this script
# again.
set -eu
cd "$(dirname "$0")/../../.."
dir=.tilt-secrets
mkdir -p "$dir"
[ -f "$dir/postgres-password" ] || openssl rand -hex 16 > "$dir/postgres-password"
[ -f "$dir/secret.key" ] || openssl rand -hex 32 > "$dir/secret.key"
[ -f "$dir/signing-key.pem" ] || openssl genpkey -algorithm ed25519 -out "$dir/signing-key.pem"
[ -f "$dir/bootstrap-admin-password" ] || openssl rand -hex 12 > "$dir/bootstrap-admin-password"
printf 'postgres://postgres:%s@postgres:5432/identity' "$(cat "$dir/postgres-password")" > "$dir/database-url"
printf 'postgres://postgres:%s@postgres:5432/profiles' "$(cat "$dir/postgres-password")" > "$dir/profiles-database-url"
printf 'postgres://postgres:%s@postgres:5432/analytics' "$(cat "$dir/postgres-password")" > "$dir/analytics-database-url"
printf 'postgres://postgres:%s@postgres:5432/matching' "$(cat "$dir/postgres-password")" > "$dir/matching-database-url"
[ -f "$dir/matching-service-client-secret" ] || : > "$dir/matching-service-client-secret"
# The embedding endpoint's key (empty: development embeds offline).
[ -f "$dir/ai-api-key" ] || : > "$dir/ai-api-key"
[ -f "$dir/profiles-service-client-secret" ] || : > "$dir/profiles-service-client-secret"
printf 'redis://redis:6379' > "$dir/redis-url"
chmod 600 "$dir"/*
kubectl get namespace timetravelers >/dev/null 2>&1 || kubectl create namespace timetravelers
kubectl -n timetravelers create secret generic dev-postgres \
  --from-file=password="$dir/postgres-password" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n timetravelers create secret generic identity-secrets \
  --from-file=database-url="$dir/database-url" --from-file=redis-url="$dir/redis-url" \
  --from-file=secret.key="$dir/secret.key" --from-file=signing-key.pem="$dir/signing-key.pem" \
  --from-file=bootstrap-admin-password="$dir/bootstrap-admin-password" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n timetravelers create secret generic profiles-secrets \
  --from-file=database-url="$dir/profiles-database-url" --from-file=redis-url="$dir/redis-url" \
  --from-file=secret.key="$dir/secret.key" \
  --from-file=service-client-secret="$dir/profiles-service-client-secret" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n timetravelers create secret generic analytics-secrets \
  --from-file=database-url="$dir/analytics-database-url" --from-file=redis-url="$dir/redis-url" \
  --from-file=secret.key="$dir/secret.key" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n timetravelers create secret generic matching-secrets \
  --from-file=database-url="$dir/matching-database-url" --from-file=redis-url="$dir/redis-url" \
  --from-file=secret.key="$dir/secret.key" \
  --from-file=service-client-secret="$dir/matching-service-client-secret" \
  --from-file=ai-api-key="$dir/ai-api-key" \
  --dry-run=client -o yaml | kubectl apply -f -
echo "dev admin: admin@timetravelers.example / $(cat "$dir/bootstrap-admin-password")"
