"""Classifiers of cloud and developer tools: kubectl/oc/helm, terraform/tofu/terragrunt,
docker/podman/compose, gcloud, az, gh and package managers.

Commands are built directly as SimpleCommands (the shell parser is tested elsewhere): a line is
split with shlex, leading ``NAME=value`` words become the command's environment.
"""

from __future__ import annotations

import shlex
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailguard.classify import (
    azure,
    containers,
    gcloud,
    github,
    kubernetes,
    packages,
    terraform,
)
from trailguard.classify._tool_common import gives_secrets, looks_prod, parse_args
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.events import Operation

MODULES: tuple[ModuleType, ...] = (
    kubernetes,
    terraform,
    containers,
    gcloud,
    azure,
    github,
    packages,
)
CONTEXT = ClassifyContext(cwd="/home/dev/proj", home="/home/dev", project_root="/home/dev/proj")


def command(line: str, **fields: Any) -> SimpleCommand:
    words = shlex.split(line)
    env: dict[str, str] = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return SimpleCommand(argv=tuple(words), text=line, env=env, **fields)


def classify(
    module: ModuleType, line: str, context: ClassifyContext = CONTEXT, **fields: Any
) -> list[Operation]:
    operations: list[Operation] = module.classify(command(line, **fields), context)
    return operations


def only(module: ModuleType, line: str, **fields: Any) -> Operation:
    operations = classify(module, line, **fields)
    assert len(operations) == 1, operations
    return operations[0]


def check(operation: Operation, expected: dict[str, Any]) -> None:
    """Compare the fields named in ``expected``: flags and attributes as subsets, ``no_flags``
    as flags that must be absent, everything else exactly."""
    for key, value in expected.items():
        if key == "flags":
            assert set(value) <= set(operation.flags), (operation.flags, value)
        elif key == "no_flags":
            assert not set(value) & set(operation.flags), (operation.flags, value)
        elif key == "attrs":
            for name, attribute in value.items():
                assert operation.attributes.get(name) == attribute, (name, operation.attributes)
        elif key == "no_attrs":
            for name in value:
                assert name not in operation.attributes, (name, operation.attributes)
        else:
            assert getattr(operation, key) == value, (key, getattr(operation, key), value)


def case(module: ModuleType, line: str, id: str, **expected: Any) -> Any:
    return pytest.param(module, line, expected, id=id)


# --- kubectl / oc / helm ------------------------------------------------------------------

KUBERNETES_CASES = [
    case(
        kubernetes,
        "kubectl get pods",
        "k8s-get-defaults-to-current-context",
        action="k8s:Get",
        access="read",
        risk="low",
        resource="k8s://current/current/pod/*",
        attrs={"context": "current", "namespace": "current", "kind": "pod"},
    ),
    case(
        kubernetes,
        "kubectl get pods -n prod",
        "k8s-read-in-prod-namespace-is-medium",
        access="read",
        risk="medium",
        flags=["prod"],
        attrs={"namespace": "prod"},
    ),
    case(
        kubernetes,
        "kubectl describe deploy/web --context staging-eu",
        "k8s-describe-kind-slash-name",
        action="k8s:Describe",
        access="read",
        risk="low",
        resource="k8s://staging-eu/current/deployment/web",
        attrs={"kind": "deployment", "name": "web", "context": "staging-eu"},
    ),
    case(
        kubernetes,
        "kubectl logs -f web-7d9 -n shop -c app",
        "k8s-logs-follow-is-not-a-filename",
        action="k8s:Logs",
        access="read",
        risk="low",
        resource="k8s://current/shop/pod/web-7d9",
        attrs={"container": "app", "name": "web-7d9"},
        no_attrs=["file"],
    ),
    case(
        kubernetes,
        "kubectl get pods -A",
        "k8s-all-namespaces-is-star",
        resource="k8s://current/*/pod/*",
        attrs={"namespace": "*"},
        flags=["all-namespaces"],
    ),
    case(
        kubernetes,
        "kubectl apply -f k8s/deploy.yaml -n shop",
        "k8s-apply-is-write-medium",
        action="k8s:Apply",
        access="write",
        risk="medium",
        attrs={"file": "k8s/deploy.yaml", "namespace": "shop"},
    ),
    case(
        kubernetes,
        "kubectl --context=gke_acme-prod_europe apply -f deploy.yaml",
        "k8s-prod-context-raises-one-level",
        access="write",
        risk="high",
        flags=["prod"],
        attrs={"context": "gke_acme-prod_europe"},
    ),
    case(
        kubernetes,
        "kubectl apply -f overlays/production/",
        "k8s-prod-manifest-path-raises",
        risk="high",
        flags=["prod"],
    ),
    case(
        kubernetes,
        "kubectl --context preprod apply -f x.yaml",
        "k8s-preprod-is-not-prod",
        risk="medium",
        no_flags=["prod"],
    ),
    case(
        kubernetes,
        "kubectl apply --dry-run=client -f x.yaml --context prod",
        "k8s-dry-run-is-low",
        risk="low",
        flags=["dry-run"],
    ),
    case(
        kubernetes,
        "kubectl create deployment web --image=nginx",
        "k8s-create-kind-name",
        action="k8s:Create",
        access="write",
        resource="k8s://current/current/deployment/web",
    ),
    case(
        kubernetes,
        "kubectl create secret generic db-pass --from-literal=password=x",
        "k8s-create-typed-secret",
        resource="k8s://current/current/secret/db-pass",
        flags=["secrets"],
    ),
    case(
        kubernetes,
        "kubectl create namespace team-a",
        "k8s-create-namespace-is-its-own-namespace",
        resource="k8s://current/team-a/namespace/team-a",
    ),
    case(
        kubernetes,
        "kubectl scale --replicas=3 deployment/mysql",
        "k8s-scale",
        action="k8s:Scale",
        access="write",
        attrs={"kind": "deployment", "name": "mysql"},
    ),
    case(
        kubernetes,
        "kubectl patch deploy web -p '{\"spec\":{}}'",
        "k8s-patch-value-is-not-a-name",
        action="k8s:Patch",
        access="write",
        resource="k8s://current/current/deployment/web",
    ),
    case(
        kubernetes,
        "kubectl label pods web-1 tier=frontend",
        "k8s-label-ignores-label-spec",
        action="k8s:Label",
        access="write",
        resource="k8s://current/current/pod/web-1",
    ),
    case(
        kubernetes,
        "kubectl annotate svc web owner=team-a",
        "k8s-annotate",
        action="k8s:Annotate",
        access="write",
        attrs={"kind": "service", "name": "web"},
    ),
    case(
        kubernetes,
        "kubectl rollout restart deployment/web",
        "k8s-rollout-restart-is-write",
        action="k8s:Rollout",
        access="write",
        risk="medium",
        attrs={"subcommand": "restart", "name": "web"},
    ),
    case(
        kubernetes,
        "kubectl rollout status deploy/web",
        "k8s-rollout-status-is-read",
        action="k8s:Rollout",
        access="read",
        risk="low",
    ),
    case(
        kubernetes,
        "kubectl edit configmap app-config",
        "k8s-edit",
        action="k8s:Edit",
        access="write",
        attrs={"kind": "configmap"},
    ),
    case(
        kubernetes,
        "kubectl replace --force -f pod.yaml",
        "k8s-replace-force-is-high",
        action="k8s:Replace",
        access="write",
        risk="high",
        flags=["force"],
    ),
    case(
        kubernetes,
        "kubectl delete pod web-1",
        "k8s-delete-pod-is-high",
        action="k8s:Delete",
        access="delete",
        risk="high",
        resource="k8s://current/current/pod/web-1",
    ),
    case(
        kubernetes,
        "kubectl delete ns staging",
        "k8s-delete-namespace-is-critical",
        access="delete",
        risk="critical",
        resource="k8s://current/staging/namespace/staging",
    ),
    case(
        kubernetes,
        "kubectl delete pods --all -n dev",
        "k8s-delete-all-is-critical",
        risk="critical",
        flags=["all"],
    ),
    case(
        kubernetes,
        "kubectl delete configmap coredns -n kube-system",
        "k8s-delete-in-kube-system-is-critical",
        risk="critical",
        flags=["system-namespace"],
    ),
    case(
        kubernetes,
        "kubectl delete crd certificates.cert-manager.io",
        "k8s-delete-crd-is-critical",
        risk="critical",
        attrs={"kind": "customresourcedefinition"},
    ),
    case(
        kubernetes,
        "kubectl drain node-1 --ignore-daemonsets",
        "k8s-drain-is-delete-on-cluster-scoped-node",
        action="k8s:Drain",
        access="delete",
        risk="high",
        resource="k8s://current/_cluster/node/node-1",
        no_attrs=["namespace"],
    ),
    case(
        kubernetes,
        "kubectl exec -it web-1 -c app -- sh -c 'cat /etc/passwd'",
        "k8s-exec-is-admin-high",
        action="k8s:Exec",
        access="admin",
        risk="high",
        resource="k8s://current/current/pod/web-1",
        attrs={"command": "sh -c 'cat /etc/passwd'"},
    ),
    case(
        kubernetes,
        "kubectl exec deploy/api -n production -- env",
        "k8s-exec-in-prod-is-critical",
        risk="critical",
        attrs={"kind": "deployment", "name": "api"},
    ),
    case(
        kubernetes,
        "kubectl cp shop/web-1:/var/log/app.log ./app.log",
        "k8s-cp-from-pod",
        action="k8s:Cp",
        access="admin",
        resource="k8s://current/shop/pod/web-1",
    ),
    case(
        kubernetes,
        "kubectl port-forward svc/db 5432:5432",
        "k8s-port-forward",
        action="k8s:PortForward",
        access="admin",
        resource="k8s://current/current/service/db",
    ),
    case(
        kubernetes,
        "kubectl cordon node-2",
        "k8s-cordon-is-admin",
        action="k8s:Cordon",
        access="admin",
        attrs={"kind": "node", "name": "node-2"},
    ),
    case(
        kubernetes,
        "kubectl taint nodes node-1 dedicated=gpu:NoSchedule",
        "k8s-taint-ignores-taint-spec",
        action="k8s:Taint",
        access="admin",
        resource="k8s://current/_cluster/node/node-1",
    ),
    case(
        kubernetes,
        "kubectl auth can-i delete pods",
        "k8s-auth-can-i-is-admin-low",
        action="k8s:Auth",
        access="admin",
        risk="low",
    ),
    case(
        kubernetes,
        "kubectl certificate approve csr-abc",
        "k8s-certificate-approve",
        action="k8s:Certificate",
        access="admin",
        risk="high",
    ),
    case(
        kubernetes,
        "kubectl top pod -n shop",
        "k8s-top-is-read",
        action="k8s:Top",
        access="read",
        attrs={"kind": "pod"},
    ),
    case(
        kubernetes,
        "kubectl get secret db -o jsonpath={.data.password}",
        "k8s-reading-secret-values-is-medium",
        access="read",
        risk="medium",
        flags=["reads-secrets"],
    ),
    case(
        kubernetes,
        "kubectl get pods --as=system:admin",
        "k8s-impersonation-raises",
        risk="medium",
        flags=["impersonation"],
        attrs={"as": "system:admin"},
    ),
    case(
        kubernetes,
        "kubectl create clusterrolebinding root --clusterrole=cluster-admin --user=eve",
        "k8s-rbac-change-is-high",
        risk="high",
        flags=["rbac"],
    ),
    case(
        kubernetes,
        "oc delete project payments-prd",
        "oc-delete-project-is-critical",
        action="k8s:Delete",
        access="delete",
        risk="critical",
        attrs={"tool": "oc", "namespace": "payments-prd"},
    ),
    case(
        kubernetes,
        "oc rsh web-1",
        "oc-rsh-is-like-exec",
        action="k8s:Rsh",
        access="admin",
        risk="high",
    ),
    case(
        kubernetes,
        "helm install web ./chart -n shop --kube-context dev",
        "helm-install",
        action="helm:Install",
        access="write",
        risk="medium",
        resource="helm://dev/shop/web",
        attrs={"release": "web", "chart": "./chart", "namespace": "shop", "kube-context": "dev"},
    ),
    case(
        kubernetes,
        "helm upgrade --install web bitnami/nginx -f values-prod.yaml",
        "helm-upgrade-prod-values-raises",
        action="helm:Upgrade",
        access="write",
        risk="high",
        flags=["install", "prod"],
        attrs={"chart": "bitnami/nginx", "values": "values-prod.yaml"},
    ),
    case(
        kubernetes,
        "helm uninstall web -n shop",
        "helm-uninstall-is-delete-high",
        action="helm:Uninstall",
        access="delete",
        risk="high",
        attrs={"release": "web"},
    ),
    case(
        kubernetes,
        "helm del web",
        "helm-del-alias",
        action="helm:Uninstall",
        access="delete",
    ),
    case(
        kubernetes,
        "helm rollback web 3",
        "helm-rollback",
        action="helm:Rollback",
        access="write",
        attrs={"release": "web"},
    ),
    case(
        kubernetes,
        "helm list -A",
        "helm-list-is-read",
        action="helm:List",
        access="read",
        risk="low",
        attrs={"namespace": "*"},
    ),
    case(
        kubernetes,
        "helm status web",
        "helm-status-is-read",
        action="helm:Status",
        access="read",
    ),
    case(
        kubernetes,
        "helm template web ./chart",
        "helm-template-is-read",
        action="helm:Template",
        access="read",
        risk="low",
        attrs={"release": "web", "chart": "./chart"},
    ),
]

# --- terraform / tofu / terragrunt ----------------------------------------------------------

TERRAFORM_CASES = [
    case(
        terraform,
        "terraform plan",
        "tf-plan-is-read-low",
        action="terraform:Plan",
        access="read",
        risk="low",
        resource="terraform://current/.",
    ),
    case(
        terraform,
        "terraform init -upgrade",
        "tf-init-is-low",
        action="terraform:Init",
        risk="low",
    ),
    case(
        terraform,
        "terraform apply",
        "tf-apply-is-write-high",
        action="terraform:Apply",
        access="write",
        risk="high",
        no_flags=["auto-approve", "prod"],
    ),
    case(
        terraform,
        "terraform apply -auto-approve",
        "tf-auto-approve-outside-prod-stays-high",
        risk="high",
        flags=["auto-approve"],
        no_flags=["prod"],
    ),
    case(
        terraform,
        "terraform apply -auto-approve -var-file=envs/prod/terraform.tfvars",
        "tf-auto-approve-prod-var-file-is-critical",
        risk="critical",
        flags=["auto-approve", "prod"],
        attrs={"var-files": "envs/prod/terraform.tfvars"},
    ),
    case(
        terraform,
        "terraform apply -var-file prod.tfvars",
        "tf-interactive-prod-apply-stays-high",
        risk="high",
        flags=["prod"],
        no_flags=["auto-approve"],
    ),
    case(
        terraform,
        "TF_WORKSPACE=production terraform apply -auto-approve",
        "tf-workspace-env-is-prod",
        risk="critical",
        resource="terraform://production/.",
        attrs={"workspace": "production"},
    ),
    case(
        terraform,
        "terraform -chdir=envs/prd apply --auto-approve",
        "tf-chdir-prod-double-dash",
        risk="critical",
        resource="terraform://current/envs/prd",
        attrs={"dir": "envs/prd"},
    ),
    case(
        terraform,
        "terraform apply -auto-approve=false -var-file=prod.tfvars",
        "tf-auto-approve-false-is-not-auto",
        risk="high",
        no_flags=["auto-approve"],
    ),
    case(
        terraform,
        "TF_CLI_ARGS_apply=-auto-approve terraform apply -var-file=prod.tfvars",
        "tf-auto-approve-hidden-in-env",
        risk="critical",
        flags=["auto-approve"],
    ),
    case(
        terraform,
        "terraform apply -target=aws_instance.web -target=aws_eip.ip",
        "tf-targets",
        flags=["target"],
        attrs={"targets": "aws_instance.web,aws_eip.ip"},
    ),
    case(
        terraform,
        "terraform destroy",
        "tf-destroy-is-critical",
        action="terraform:Destroy",
        access="delete",
        risk="critical",
    ),
    case(
        terraform,
        "terraform apply -destroy -auto-approve",
        "tf-apply-destroy-is-a-destroy",
        action="terraform:Apply",
        access="delete",
        risk="critical",
        flags=["destroy", "auto-approve"],
    ),
    case(
        terraform,
        "terraform import aws_s3_bucket.logs acme-logs",
        "tf-import-is-admin-high",
        action="terraform:Import",
        access="admin",
        risk="high",
        attrs={"address": "aws_s3_bucket.logs", "id": "acme-logs"},
    ),
    case(
        terraform,
        "terraform state rm module.db.aws_db_instance.main",
        "tf-state-rm",
        action="terraform:StateRm",
        access="admin",
        risk="high",
        attrs={"addresses": "module.db.aws_db_instance.main"},
    ),
    case(
        terraform,
        "terraform state mv a.b c.d",
        "tf-state-mv",
        action="terraform:StateMv",
        access="admin",
        risk="high",
    ),
    case(
        terraform,
        "terraform state push errored.tfstate",
        "tf-state-push",
        action="terraform:StatePush",
        access="admin",
        risk="high",
    ),
    case(
        terraform,
        "terraform state list",
        "tf-state-list-is-read",
        action="terraform:StateList",
        access="read",
        risk="low",
    ),
    case(
        terraform,
        "terraform workspace select prod",
        "tf-workspace-select-prod",
        action="terraform:WorkspaceSelect",
        access="write",
        risk="medium",
        flags=["prod"],
        attrs={"workspace": "prod"},
    ),
    case(
        terraform,
        "terraform workspace new feature-x",
        "tf-workspace-new",
        action="terraform:WorkspaceNew",
        access="write",
        risk="low",
    ),
    case(
        terraform,
        "terraform workspace delete old",
        "tf-workspace-delete",
        action="terraform:WorkspaceDelete",
        access="delete",
        risk="high",
    ),
    case(
        terraform,
        "tofu apply tfplan",
        "tofu-saved-plan",
        action="terraform:Apply",
        flags=["saved-plan"],
        attrs={"tool": "tofu", "plan-file": "tfplan"},
    ),
    case(
        terraform,
        "terragrunt run-all apply --terragrunt-non-interactive",
        "terragrunt-run-all-non-interactive",
        action="terraform:Apply",
        risk="critical",
        flags=["run-all", "auto-approve"],
        attrs={"tool": "terragrunt"},
    ),
    case(
        terraform,
        "terragrunt run --all -- destroy",
        "terragrunt-run-all-destroy",
        action="terraform:Destroy",
        access="delete",
        risk="critical",
    ),
    case(
        terraform,
        "terragrunt plan --terragrunt-working-dir live/prod/vpc",
        "terragrunt-working-dir-prod",
        action="terraform:Plan",
        risk="medium",
        flags=["prod"],
        attrs={"dir": "live/prod/vpc"},
    ),
]

# --- docker / podman / compose --------------------------------------------------------------

CONTAINER_CASES = [
    case(
        containers,
        "docker run --rm -it ubuntu:24.04 bash",
        "docker-run-plain-is-write-medium",
        action="docker:Run",
        access="write",
        risk="medium",
        resource="docker://local/image/ubuntu:24.04",
        attrs={"image": "ubuntu:24.04", "command": "bash", "engine": "docker"},
    ),
    case(
        containers,
        "docker run --privileged alpine",
        "docker-run-privileged-is-high",
        risk="high",
        flags=["privileged"],
    ),
    case(
        containers,
        "docker run -v /:/host alpine chroot /host",
        "docker-run-host-root-mount-is-critical",
        risk="critical",
        flags=["host-root-mount"],
        attrs={"mounts": "/"},
    ),
    case(
        containers,
        "docker run --network host nginx",
        "docker-run-host-network-is-high",
        risk="high",
        flags=["host-network"],
    ),
    case(
        containers,
        "docker run --pid=host --net=host busybox",
        "docker-run-two-escape-vectors-is-critical",
        risk="critical",
        flags=["host-pid", "host-network"],
    ),
    case(
        containers,
        "docker run -v /var/run/docker.sock:/var/run/docker.sock docker:cli",
        "docker-run-socket-mount-is-critical",
        risk="critical",
        flags=["docker-socket"],
    ),
    case(
        containers,
        "docker run --mount type=bind,source=/etc,target=/host-etc alpine",
        "docker-run-mount-syntax-sensitive",
        risk="high",
        flags=["sensitive-mount"],
    ),
    case(
        containers,
        "docker run -v ~/.aws:/root/.aws amazon/aws-cli s3 ls",
        "docker-run-home-credentials-mount",
        risk="high",
        flags=["sensitive-mount"],
        attrs={"image": "amazon/aws-cli", "command": "s3 ls"},
    ),
    case(
        containers,
        "docker run -v /home/dev/proj:/src -w /src node:20 npm test",
        "docker-run-project-mount-is-ordinary",
        risk="medium",
        no_flags=["sensitive-mount"],
        attrs={"image": "node:20"},
    ),
    case(
        containers,
        "docker run --cap-add=SYS_ADMIN --security-opt seccomp=unconfined alpine",
        "docker-run-caps-and-unconfined",
        risk="critical",
        flags=["dangerous-capability", "unconfined"],
    ),
    case(
        containers,
        "podman run --privileged fedora",
        "podman-maps-to-docker-actions",
        action="docker:Run",
        risk="high",
        attrs={"engine": "podman"},
    ),
    case(
        containers,
        "docker exec -it -u root web sh",
        "docker-exec",
        action="docker:Exec",
        access="admin",
        risk="medium",
        resource="docker://local/container/web",
        flags=["root"],
    ),
    case(
        containers,
        "docker build -t ghcr.io/acme/app:1.2 .",
        "docker-build-is-write-low",
        action="docker:Build",
        access="write",
        risk="low",
        attrs={"tags": "ghcr.io/acme/app:1.2"},
        no_flags=["publish"],
    ),
    case(
        containers,
        "docker pull redis:7",
        "docker-pull-is-read",
        action="docker:Pull",
        access="read",
        risk="low",
    ),
    case(
        containers,
        "docker rm -f web",
        "docker-rm-force-is-not-a-filter",
        action="docker:Rm",
        access="delete",
        resource="docker://local/container/web",
        flags=["force"],
    ),
    case(
        containers,
        "docker rmi old:1",
        "docker-rmi",
        action="docker:Rmi",
        access="delete",
        resource="docker://local/image/old:1",
    ),
    case(
        containers,
        "docker image rm app:1",
        "docker-image-rm-is-rmi",
        action="docker:Rmi",
        access="delete",
    ),
    case(
        containers,
        "docker system prune -a --volumes -f",
        "docker-system-prune-volumes-is-high",
        action="docker:SystemPrune",
        access="delete",
        risk="high",
        flags=["volumes", "all"],
    ),
    case(
        containers,
        "docker system prune",
        "docker-system-prune-plain-is-medium",
        action="docker:SystemPrune",
        access="delete",
        risk="medium",
    ),
    case(
        containers,
        "docker volume rm pgdata",
        "docker-volume-rm-is-high",
        action="docker:VolumeRm",
        access="delete",
        risk="high",
        resource="docker://local/volume/pgdata",
    ),
    case(
        containers,
        "docker login -u bob -p s3cr3t-pass ghcr.io",
        "docker-login-password-is-an-inline-secret",
        action="docker:Login",
        access="admin",
        flags=["credentials", "inline-secret"],
        attrs={"registry": "ghcr.io", "username": "bob"},
    ),
    case(
        containers,
        "docker login --password=s3cr3t-pass registry.acme.dev",
        "docker-login-password-equals-keeps-raw",
    ),
    case(
        containers,
        "docker login --username bob --password-stdin ghcr.io",
        "docker-login-stdin-keeps-raw",
        flags=["credentials"],
        no_flags=["inline-secret"],
        raw="docker login --username bob --password-stdin ghcr.io",
    ),
    case(
        containers,
        "docker --context prod-east ps",
        "docker-prod-context-raises",
        action="docker:Ps",
        access="read",
        risk="medium",
        resource="docker://prod-east",
        flags=["prod"],
    ),
    case(
        containers,
        "docker compose up -d --build",
        "compose-up",
        action="docker:ComposeUp",
        access="write",
        risk="medium",
        flags=["detach", "build"],
    ),
    case(
        containers,
        "docker compose down",
        "compose-down-is-delete-medium",
        action="docker:ComposeDown",
        access="delete",
        risk="medium",
        no_flags=["volumes"],
    ),
    case(
        containers,
        "docker compose down -v --rmi all",
        "compose-down-volumes-is-high",
        action="docker:ComposeDown",
        access="delete",
        risk="high",
        flags=["volumes", "remove-images"],
    ),
    case(
        containers,
        "docker-compose -p shop -f docker-compose.prod.yml down --volumes",
        "compose-standalone-prod-file",
        action="docker:ComposeDown",
        risk="critical",
        resource="docker://local/compose/shop",
        flags=["volumes", "prod"],
        attrs={"project": "shop", "files": "docker-compose.prod.yml"},
    ),
]

# --- gcloud / az ----------------------------------------------------------------------------

CLOUD_CASES = [
    case(
        gcloud,
        "gcloud compute instances list",
        "gcp-list-is-read",
        action="gcp:compute.instances.list",
        access="read",
        risk="low",
        resource="gcp://current/compute/instances/*",
    ),
    case(
        gcloud,
        "gcloud compute instances delete vm-1 --zone us-central1-a --quiet",
        "gcp-delete-instance",
        action="gcp:compute.instances.delete",
        access="delete",
        risk="high",
        resource="gcp://current/compute/instances/vm-1",
        flags=["quiet"],
        attrs={"zone": "us-central1-a", "name": "vm-1"},
    ),
    case(
        gcloud,
        "gcloud compute instances describe vm-1 --project acme-prod",
        "gcp-prod-project-raises",
        access="read",
        risk="medium",
        flags=["prod"],
        attrs={"project": "acme-prod"},
    ),
    case(
        gcloud,
        "CLOUDSDK_CORE_PROJECT=acme-dev gcloud run deploy api --image gcr.io/acme/api --region eu",
        "gcp-project-from-env-and-deploy-is-write",
        action="gcp:run.deploy",
        access="write",
        risk="medium",
        resource="gcp://acme-dev/run/api",
        attrs={"project": "acme-dev", "region": "eu"},
    ),
    case(
        gcloud,
        "gcloud beta container clusters create ci --num-nodes 1",
        "gcp-release-track-is-dropped",
        action="gcp:container.clusters.create",
        attrs={"track": "beta", "name": "ci"},
    ),
    case(
        gcloud,
        "gcloud projects delete acme-sandbox",
        "gcp-project-delete-is-critical",
        action="gcp:projects.delete",
        access="delete",
        risk="critical",
        attrs={"project": "acme-sandbox"},
    ),
    case(
        gcloud,
        "gcloud projects add-iam-policy-binding acme-dev --member=user:eve@x.io "
        "--role=roles/viewer",
        "gcp-iam-binding-is-admin",
        action="gcp:projects.add-iam-policy-binding",
        access="admin",
        risk="high",
        attrs={"member": "user:eve@x.io", "role": "roles/viewer"},
    ),
    case(
        gcloud,
        "gcloud projects add-iam-policy-binding acme-dev --member=user:eve@x.io --role=roles/owner",
        "gcp-owner-grant-is-critical",
        access="admin",
        risk="critical",
        flags=["privileged-role"],
    ),
    case(
        gcloud,
        "gcloud storage buckets add-iam-policy-binding gs://b --member=allUsers --role=roles/x",
        "gcp-public-grant-is-critical",
        risk="critical",
        resource="gs://b",
        flags=["public"],
    ),
    case(
        gcloud,
        "gcloud pubsub topics set-iam-policy t policy.json",
        "gcp-set-iam-policy-is-admin",
        action="gcp:pubsub.topics.set-iam-policy",
        access="admin",
    ),
    case(
        gcloud,
        "gcloud logging logs delete my-log",
        "gcp-group-named-like-a-verb",
        action="gcp:logging.logs.delete",
        access="delete",
    ),
    case(
        gcloud,
        "gcloud secrets versions access latest --secret=db-pass",
        "gcp-secret-access-is-medium",
        action="gcp:secrets.versions.access",
        access="read",
        risk="medium",
        flags=["secrets"],
    ),
    case(
        gcloud,
        "gcloud compute ssh vm-1 --zone z",
        "gcp-ssh-is-admin",
        action="gcp:compute.ssh",
        access="admin",
        risk="high",
    ),
    case(
        gcloud,
        "gcloud sql users set-password root --instance=db --password=hunter2hunter",
        "gcp-set-password",
        access="admin",
        flags=["credentials", "inline-secret"],
    ),
    case(
        gcloud,
        "gcloud compute frobnicate thing",
        "gcp-unknown-verb-is-cautious",
        access="write",
        risk="medium",
        flags=["unknown-verb"],
    ),
    case(
        azure,
        "az vm list --subscription sub-dev",
        "az-list-is-read",
        action="azure:vm.list",
        access="read",
        risk="low",
        resource="azure://sub-dev/*/vm/*",
        attrs={"subscription": "sub-dev"},
    ),
    case(
        azure,
        "az vm delete -g rg-web -n vm1 --yes",
        "az-delete-vm",
        action="azure:vm.delete",
        access="delete",
        risk="high",
        resource="azure://current/rg-web/vm/vm1",
        flags=["yes"],
        attrs={"resource-group": "rg-web", "name": "vm1"},
    ),
    case(
        azure,
        "az webapp deploy --resource-group rg-prod -n shop --src-path app.zip",
        "az-deploy-in-prod-rg",
        action="azure:webapp.deploy",
        access="write",
        risk="high",
        flags=["prod"],
    ),
    case(
        azure,
        "az group delete --name rg-sandbox --yes",
        "az-group-delete-is-critical",
        action="azure:group.delete",
        access="delete",
        risk="critical",
        attrs={"resource-group": "rg-sandbox"},
    ),
    case(
        azure,
        "az role assignment create --assignee bob@x.io --role Reader --scope /subscriptions/1",
        "az-role-assignment-is-admin",
        action="azure:role.assignment.create",
        access="admin",
        risk="high",
        attrs={"role": "Reader", "assignee": "bob@x.io"},
    ),
    case(
        azure,
        "az role assignment create --assignee bob@x.io --role Owner",
        "az-owner-assignment-is-critical",
        risk="critical",
        flags=["privileged-role"],
    ),
    case(
        azure,
        "az keyvault secret show --vault-name kv1 --name db-pass",
        "az-secret-show-is-medium",
        access="read",
        risk="medium",
        flags=["secrets"],
        attrs={"vault": "kv1"},
    ),
    case(
        azure,
        "az keyvault secret set --vault-name kv1 -n db --value s3cr3t-value",
        "az-secret-value",
        access="write",
    ),
    case(
        azure,
        "az resource delete --ids "
        "/subscriptions/abc/resourceGroups/rg1/providers/Microsoft.Web/sites/s1",
        "az-ids-give-subscription-and-group",
        access="delete",
        resource="azure://abc/rg1/resource/s1",
        attrs={"subscription": "abc", "resource-group": "rg1", "name": "s1"},
    ),
    case(
        azure,
        "az vm run-command invoke -g rg -n vm1 --command-id RunShellScript --scripts id",
        "az-run-command-is-remote-exec",
        access="admin",
        risk="high",
        flags=["remote-exec"],
    ),
    case(
        azure,
        "AZURE_DEFAULTS_GROUP=rg-default az storage account list",
        "az-default-group-from-env",
        access="read",
        attrs={"resource-group": "rg-default"},
    ),
]

# --- gh -----------------------------------------------------------------------------------

GITHUB_CASES = [
    case(
        github,
        "gh pr create --base main --title Fix --body 'details here'",
        "gh-pr-create",
        action="github:PullRequestCreate",
        access="write",
        risk="medium",
        attrs={"base": "main"},
    ),
    case(
        github,
        "gh pr merge 42 --squash -d",
        "gh-pr-merge",
        action="github:PullRequestMerge",
        access="write",
        risk="medium",
        resource="github://current/pr/42",
        flags=["delete-branch"],
    ),
    case(
        github,
        "gh pr merge 42 --admin -R acme/app",
        "gh-pr-merge-admin-bypass-is-high",
        risk="high",
        resource="github://acme/app/pr/42",
        flags=["bypass-protection"],
    ),
    case(
        github,
        "gh pr close 42",
        "gh-pr-close",
        action="github:PullRequestClose",
        access="write",
        risk="low",
    ),
    case(
        github,
        "gh pr view 12",
        "gh-pr-view-is-read",
        action="github:PullRequestView",
        access="read",
        risk="low",
    ),
    case(
        github,
        "gh pr review 12 --approve",
        "gh-pr-approve-is-high",
        action="github:PullRequestReview",
        risk="high",
        flags=["approve"],
    ),
    case(
        github,
        "gh repo delete acme/app --yes",
        "gh-repo-delete-is-critical",
        action="github:RepoDelete",
        access="delete",
        risk="critical",
        resource="github://acme/app",
        attrs={"repo": "acme/app"},
    ),
    case(
        github,
        "gh repo create acme/tool --public",
        "gh-public-repo-is-high",
        action="github:RepoCreate",
        risk="high",
        flags=["public"],
    ),
    case(
        github,
        "gh release create v1.2.0 --notes 'first'",
        "gh-release-create",
        action="github:ReleaseCreate",
        access="write",
        risk="high",
        flags=["publish"],
        attrs={"tag": "v1.2.0"},
    ),
    case(
        github,
        "gh secret set DEPLOY_KEY -b s3cr3t-value",
        "gh-secret-set-is-admin",
        action="github:SecretSet",
        access="admin",
        risk="high",
        attrs={"name": "DEPLOY_KEY"},
    ),
    case(
        github,
        "gh secret set DB_PASSWORD --env production --body=s3cr3t-value",
        "gh-secret-set-prod-env-is-critical",
        risk="critical",
        flags=["prod"],
        attrs={"environment": "production"},
    ),
    case(
        github,
        "gh workflow run deploy.yml --ref main -f environment=staging",
        "gh-workflow-run",
        action="github:WorkflowRun",
        access="write",
        risk="medium",
        attrs={"workflow": "deploy.yml", "ref": "main"},
    ),
    case(
        github,
        "gh api repos/acme/app/issues",
        "gh-api-default-get",
        action="github:ApiGet",
        access="read",
        risk="low",
        attrs={"method": "GET", "repo": "acme/app"},
    ),
    case(
        github,
        "gh api repos/acme/app/issues -f title=bug",
        "gh-api-fields-imply-post",
        action="github:ApiPost",
        access="write",
        attrs={"method": "POST"},
    ),
    case(
        github,
        "gh api -X DELETE repos/acme/app",
        "gh-api-delete-repo-is-critical",
        action="github:ApiDelete",
        access="delete",
        risk="critical",
    ),
    case(
        github,
        "gh api --method PUT repos/acme/app/collaborators/eve",
        "gh-api-collaborator-is-admin",
        access="admin",
        risk="high",
        flags=["admin-endpoint"],
    ),
    case(
        github,
        "gh api graphql -f 'query=mutation { addStar(input:{}) { clientMutationId } }'",
        "gh-api-graphql-mutation-is-write",
        action="github:ApiGraphql",
        access="write",
    ),
    case(
        github,
        "gh api graphql -f 'query=query { viewer { login } }'",
        "gh-api-graphql-query-is-read",
        action="github:ApiGraphql",
        access="read",
    ),
    case(
        github,
        "gh auth token",
        "gh-auth-token-is-admin-high",
        action="github:AuthToken",
        access="admin",
        risk="high",
        flags=["credentials"],
    ),
]

# --- packages -----------------------------------------------------------------------------

PACKAGE_CASES = [
    case(
        packages,
        "npm publish",
        "npm-publish",
        action="package:Publish",
        access="write",
        risk="high",
        attrs={"ecosystem": "npm", "tool": "npm"},
    ),
    case(
        packages,
        "npm publish --registry https://npm.acme.dev --otp 123456",
        "npm-publish-registry-and-otp",
        attrs={"registry": "https://npm.acme.dev"},
    ),
    case(
        packages,
        "npm publish --dry-run",
        "npm-publish-dry-run-is-low",
        risk="low",
        flags=["dry-run"],
    ),
    case(
        packages,
        "yarn publish",
        "yarn-publish",
        action="package:Publish",
        attrs={"tool": "yarn"},
    ),
    case(
        packages,
        "pnpm publish --no-git-checks",
        "pnpm-publish",
        action="package:Publish",
        flags=["no-git-checks"],
    ),
    case(
        packages,
        "twine upload dist/*",
        "twine-upload",
        action="package:Publish",
        risk="high",
        attrs={"ecosystem": "pypi", "package": "dist/*"},
    ),
    case(
        packages,
        "python -m twine upload --repository-url https://pypi.acme.dev dist/x.whl",
        "python-m-twine-upload",
        action="package:Publish",
        attrs={"tool": "twine", "registry": "https://pypi.acme.dev"},
    ),
    case(
        packages,
        "twine upload -r testpypi -u __token__ -p pypi-AgEIcHlwaS5vcmc dist/x.whl",
        "twine-testpypi-is-medium",
        risk="medium",
        flags=["test-registry", "credentials"],
    ),
    case(
        packages,
        "poetry publish --build",
        "poetry-publish",
        action="package:Publish",
        attrs={"ecosystem": "pypi", "tool": "poetry"},
    ),
    case(
        packages,
        "cargo publish -p mycrate --token cio_secret_tok",
        "cargo-publish-package-is-not-a-secret",
        action="package:Publish",
        resource="package://crates/mycrate",
    ),
    case(
        packages,
        "gem push acme-1.0.gem --host https://gems.acme.dev",
        "gem-push",
        action="package:Publish",
        attrs={"ecosystem": "rubygems", "registry": "https://gems.acme.dev"},
    ),
    case(
        packages,
        "npm unpublish left-pad@1.0.0",
        "npm-unpublish-is-delete-high",
        action="package:Unpublish",
        access="delete",
        risk="high",
        attrs={"package": "left-pad@1.0.0"},
    ),
    case(
        packages,
        "npm install",
        "npm-install-bare",
        action="package:Install",
        access="write",
        risk="low",
    ),
    case(
        packages,
        "npm i lodash",
        "npm-install-package",
        action="package:Install",
        risk="low",
        resource="package://npm/lodash",
        no_flags=["from-url"],
    ),
    case(
        packages,
        "npm install expressjs/express",
        "npm-github-shorthand-is-from-url",
        risk="medium",
        flags=["from-url"],
    ),
    case(
        packages,
        "npm install @scope/pkg",
        "npm-scoped-package-is-not-a-url",
        risk="low",
        no_flags=["from-url"],
    ),
    case(
        packages,
        "pip install requests",
        "pip-install",
        action="package:Install",
        access="write",
        risk="low",
        attrs={"ecosystem": "pypi", "packages": "requests"},
    ),
    case(
        packages,
        "pip install -v requests",
        "pip-verbose-does-not-eat-the-package",
        attrs={"packages": "requests"},
    ),
    case(
        packages,
        "pip install git+https://github.com/acme/lib.git@main",
        "pip-install-from-git-is-medium",
        risk="medium",
        flags=["from-url"],
    ),
    case(
        packages,
        "pip install -i https://bob:hunter22@pypi.acme.dev/simple foo",
        "pip-custom-index-with-password",
        risk="medium",
        flags=["custom-index"],
        attrs={"registry": "https://pypi.acme.dev/simple"},
    ),
    case(
        packages,
        "python3 -m pip install -r requirements.txt",
        "python-m-pip-requirements",
        action="package:Install",
        risk="low",
        attrs={"requirements": "requirements.txt"},
    ),
    case(
        packages,
        "uv pip install httpx",
        "uv-pip-install",
        action="package:Install",
        attrs={"tool": "uv"},
    ),
    case(
        packages,
        "cargo install --git https://github.com/acme/tool",
        "cargo-install-git-is-from-url",
        risk="medium",
        flags=["from-url"],
    ),
    case(
        packages,
        "yarn",
        "bare-yarn-installs",
        action="package:Install",
        risk="low",
    ),
]

ALL_CASES = [
    *KUBERNETES_CASES,
    *TERRAFORM_CASES,
    *CONTAINER_CASES,
    *CLOUD_CASES,
    *GITHUB_CASES,
    *PACKAGE_CASES,
]
KINDS = {
    kubernetes: {"kubernetes", "helm"},
    terraform: {"terraform"},
    containers: {"docker"},
    gcloud: {"gcp"},
    azure: {"azure"},
    github: {"github"},
    packages: {"package"},
}


@pytest.mark.parametrize(("module", "line", "expected"), ALL_CASES)
def test_classifies(module: ModuleType, line: str, expected: dict[str, Any]) -> None:
    expected = dict(expected)
    operation = only(module, line)
    assert operation.kind in KINDS[module]
    assert operation.action.split(":")[0] in {
        "k8s",
        "helm",
        "terraform",
        "docker",
        "gcp",
        "azure",
        "github",
        "package",
    }
    assert operation.raw == expected.pop("raw", line)
    check(operation, expected)
    # What the ledger stores must round-trip through the strict model.
    assert Operation.model_validate(operation.model_dump()) == operation


# --- operations per target, manifests on stdin, publishing twice ---------------------------


def test_kubectl_names_each_target_in_its_own_operation() -> None:
    operations = classify(kubernetes, "kubectl --context prod delete pod web-1 web-2")
    assert [op.resource for op in operations] == [
        "k8s://prod/current/pod/web-1",
        "k8s://prod/current/pod/web-2",
    ]
    assert {(op.access, op.risk) for op in operations} == {("delete", "critical")}


def test_kubectl_mixed_kind_slash_name_targets() -> None:
    operations = classify(kubernetes, "kubectl delete deploy/web svc/web -n shop")
    assert [(op.attributes["kind"], op.attributes["name"]) for op in operations] == [
        ("deployment", "web"),
        ("service", "web"),
    ]


def test_kubectl_reads_the_objects_of_a_manifest_on_stdin() -> None:
    manifest = (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: billing\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n"
        "  namespace: billing\n  labels:\n    name: not-this\nspec: {}\n"
    )
    operations = classify(kubernetes, "kubectl delete -f -", stdin=manifest)
    assert [op.resource for op in operations] == [
        "k8s://current/billing/namespace/billing",
        "k8s://current/billing/deployment/api",
    ]
    assert operations[0].risk == "critical"  # deleting a namespace
    assert operations[1].risk == "high"


def test_docker_push_is_also_a_package_publish() -> None:
    push, publish = classify(containers, "docker push ghcr.io/acme/app:1.2")
    check(
        push,
        {
            "action": "docker:Push",
            "access": "write",
            "risk": "high",
            "flags": ["publish"],
            "attrs": {"registry": "ghcr.io", "image": "ghcr.io/acme/app:1.2"},
        },
    )
    check(
        publish,
        {
            "kind": "package",
            "action": "package:Publish",
            "access": "write",
            "risk": "high",
            "resource": "package://docker/ghcr.io/acme/app:1.2",
            "attrs": {"ecosystem": "docker", "registry": "ghcr.io"},
        },
    )


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("acme/app", "docker.io"),
        ("redis", "docker.io"),
        ("localhost/app:dev", "localhost"),
        ("registry.acme.dev:5000/team/app", "registry.acme.dev:5000"),
    ],
)
def test_push_registry_is_the_image_host(image: str, registry: str) -> None:
    operations = classify(containers, f"docker image push {image}")
    assert [op.attributes["registry"] for op in operations] == [registry, registry]


def test_buildx_build_push_publishes_each_tag() -> None:
    operations = classify(containers, "docker buildx build --push -t acme/a:1 -t acme/a:latest .")
    assert [op.action for op in operations] == [
        "docker:Build",
        "package:Publish",
        "package:Publish",
    ]
    assert operations[0].risk == "high"
    assert [op.attributes["package"] for op in operations[1:]] == ["acme/a:1", "acme/a:latest"]


def test_helm_push_is_a_package_publish() -> None:
    operations = classify(kubernetes, "helm push chart-1.0.tgz oci://registry.acme.dev/charts")
    assert [op.action for op in operations] == ["helm:Push", "package:Publish"]
    assert operations[1].attributes["registry"] == "oci://registry.acme.dev/charts"


# --- nothing to say, never raising ----------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "line"),
    [
        (kubernetes, "kubectl"),
        (kubernetes, "kubectl --help"),
        (kubernetes, "ls -la"),
        (terraform, "terraform -version"),
        (terraform, "terraform frobnicate"),
        (containers, "docker"),
        (containers, "docker compose"),
        (gcloud, "gcloud"),
        (azure, "az --version"),
        (github, "gh"),
        (github, "gh --version"),
        (packages, "npm run build"),
        (packages, "npm test"),
        (packages, "pip list"),
        (packages, "python script.py"),
        (packages, "python -c 'import twine'"),
        (packages, "cargo build --release"),
    ],
)
def test_commands_without_anything_to_say_give_nothing(module: ModuleType, line: str) -> None:
    assert classify(module, line) == []


@pytest.mark.parametrize("module", MODULES)
def test_unresolved_commands_give_nothing(module: ModuleType) -> None:
    program = sorted(module.PROGRAMS)[0]
    unresolved = SimpleCommand(
        argv=(program, "delete", "x"), text=f"{program} delete $X", unresolved="variable"
    )
    assert module.classify(unresolved, CONTEXT) == []
    assert module.classify(SimpleCommand(argv=(), text=""), CONTEXT) == []


@pytest.mark.parametrize("module", MODULES)
def test_modules_expose_their_programs(module: ModuleType) -> None:
    assert isinstance(module.PROGRAMS, frozenset)
    assert module.PROGRAMS
    assert all(isinstance(program, str) and program for program in module.PROGRAMS)


def test_program_is_matched_by_base_name() -> None:
    assert only(kubernetes, "/usr/local/bin/kubectl delete ns x").risk == "critical"


_WORDS = st.sampled_from(
    [
        "delete",
        "apply",
        "get",
        "run",
        "push",
        "publish",
        "install",
        "-f",
        "-",
        "--",
        "-n",
        "--namespace=prod",
        "-p",
        "--password",
        "-it",
        "-v",
        "/:/host",
        "=",
        "",
        "--all",
        "-auto-approve",
        "state",
        "rm",
        "api",
        "-X",
        "DELETE",
        "repos/a/b",
        "compose",
        "down",
        "pod/x",
        "x:y",
        "ns",
        "prod",
        "gs://b",
        "--ids",
        "/subscriptions/",
        "-m",
        "twine",
        "upload",
        "graphql",
        "ü",
        "'",
        '"',
        "\\",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    module=st.sampled_from(MODULES),
    words=st.lists(st.one_of(_WORDS, st.text(max_size=12)), max_size=8),
    stdin=st.none() | st.text(max_size=60),
)
def test_never_raises_and_always_returns_valid_operations(
    module: ModuleType, words: list[str], stdin: str | None
) -> None:
    for program in sorted(module.PROGRAMS):
        argv = (program, *words)
        text = " ".join(shlex.quote(word) for word in argv)
        operations = module.classify(SimpleCommand(argv=argv, text=text, stdin=stdin), CONTEXT)
        assert isinstance(operations, list)
        for operation in operations:
            assert isinstance(operation, Operation)
            assert operation.raw is not None
            assert operation.kind in KINDS[module] | {"package"}
            operation.to_json_dict()


# --- the shared helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "prod"),
    [
        ("prod", True),
        ("production", True),
        ("prd", True),
        ("acme-prod", True),
        ("gke_acme-prod_europe-west1_main", True),
        ("envs/prod/main.tfvars", True),
        ("prod2", True),
        ("values.production.yaml", True),
        ("preprod", False),
        ("pre-prod", False),
        ("non-prod", False),
        ("nonprod", False),
        ("products", False),
        ("reproduce", False),
        ("staging", False),
        ("", False),
    ],
)
def test_looks_prod(value: str, prod: bool) -> None:
    assert looks_prod(value) is prod


def test_parse_args_posix_clusters_and_values() -> None:
    parsed = parse_args(
        ["-it", "-nprod", "-c=app", "--context", "ctx", "--dry-run=client", "pod", "--", "sh"],
        {"-n", "-c", "--context"},
    )
    assert parsed.positionals == ["pod"]
    assert parsed.rest == ["sh"]
    assert parsed.options == {
        "-i": [""],
        "-t": [""],
        "-n": ["prod"],
        "-c": ["app"],
        "--context": ["ctx"],
        "--dry-run": ["client"],
    }


def test_parse_args_go_style() -> None:
    parsed = parse_args(
        ["--var-file", "a.tfvars", "-var-file=b.tfvars", "-auto-approve", "plan.out"],
        {"-var-file"},
        go_style=True,
    )
    assert parsed.all("-var-file") == ["a.tfvars", "b.tfvars"]
    assert parsed.has("-auto-approve")
    assert parsed.positionals == ["plan.out"]


@pytest.mark.parametrize(
    "line",
    [
        "tool -psecretvalue",
        "tool --password 'two words'",
        "tool --password=hunter22",
        "GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123 tool",
        "tool https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/a/b",
        "tool https://bob:hunter22@example.com/a",
    ],
)
def test_gives_secrets_sees_flag_values_env_and_url_credentials(line: str) -> None:
    assert gives_secrets(command(line), {"-p", "--password"})


def test_gives_secrets_leaves_innocent_commands_alone() -> None:
    assert not gives_secrets(command("docker login -u bob ghcr.io"), {"-p", "--password"})
    assert not gives_secrets(command("tool --password"), {"-p", "--password"})
    assert not gives_secrets(command("git clone https://git@github.com/a/b"), {"-p"})


# --- through the dispatcher and the default policy ------------------------------------------


@pytest.mark.parametrize(
    ("line", "action"),
    [
        ("kubectl delete ns x", "k8s:Delete"),
        ("helm list", "helm:List"),
        ("tofu plan", "terraform:Plan"),
        ("podman ps", "docker:Ps"),
        ("gcloud compute instances list", "gcp:compute.instances.list"),
        ("az vm list", "azure:vm.list"),
        ("gh pr list", "github:PullRequestList"),
        ("twine upload dist/*", "package:Publish"),
    ],
)
def test_dispatcher_routes_programs_here(line: str, action: str) -> None:
    from trailguard.classify import classify_command

    assert [op.action for op in classify_command(command(line), CONTEXT)] == [action]


@pytest.mark.parametrize(
    ("line", "result"),
    [
        ("terraform destroy -var-file=envs/prod.tfvars", "denied"),
        ("terraform apply -auto-approve -var-file=envs/staging.tfvars", "allowed"),
        ("terraform -chdir=live/production apply -auto-approve", "denied"),
        ("TF_WORKSPACE=prod terraform apply -auto-approve", "denied"),
        ("terraform apply -var-file=envs/prod.tfvars", "allowed"),  # a human confirms
        ("terraform destroy -var-file=envs/staging.tfvars", "allowed"),
        ("terraform plan -var-file=envs/prod.tfvars", "allowed"),
    ],
)
def test_default_policy_stops_unattended_prod_terraform(line: str, result: str) -> None:
    from trailguard.policy.engine import DecisionRequest, decide
    from trailguard.policy.loader import load_policy_set

    operations = tuple(classify(terraform, line))
    decision = decide(
        load_policy_set(),
        DecisionRequest(developer_id="dev", tool="Bash", operations=operations),
    )
    assert decision.result == result
