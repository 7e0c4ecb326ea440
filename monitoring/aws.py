"""boto3 for the metric collectors: the one place that creates AWS clients and explains AWS failures.

Clients are built per call from settings (region, optional endpoint, timeouts, retries), so tests
can moto-mock or patch this module and a settings override takes effect on the next run.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from django.conf import settings

SERVICE_TITLES = {"autoscaling": "Auto Scaling", "cloudwatch": "CloudWatch", "sqs": "SQS"}

ACCESS_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
THROTTLING_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
}
BAD_CREDENTIALS_CODES = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
}


class AwsError(Exception):
    """A failed AWS call or an answer we cannot use; the message is meant for a person."""


def autoscaling_client() -> BaseClient:
    return _client("autoscaling")


def cloudwatch_client() -> BaseClient:
    return _client("cloudwatch")


def sqs_client() -> BaseClient:
    return _client("sqs")


def _client(service_name: str) -> BaseClient:
    # A session per client: boto3's default session is not safe to share between threads.
    return boto3.session.Session().client(
        service_name,
        region_name=settings.AWS_REGION,
        endpoint_url=settings.AWS_ENDPOINT_URL,
        config=client_config(),
    )


def client_config() -> Config:
    return Config(
        connect_timeout=settings.AWS_CONNECT_TIMEOUT_SECONDS,
        read_timeout=settings.AWS_READ_TIMEOUT_SECONDS,
        # "standard" retries throttling and transient network errors with backoff. botocore's
        # "max_attempts" counts retries only; "total_max_attempts" counts the first call too, as
        # the AWS CLI's AWS_MAX_ATTEMPTS does, so AWS_MAX_ATTEMPTS=1 means no retry.
        retries={"total_max_attempts": settings.AWS_MAX_ATTEMPTS, "mode": "standard"},
    )


@contextmanager
def explained_failures(client: BaseClient) -> Iterator[None]:
    """Turn a botocore failure of a call on `client` into an AwsError a person understands."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise AwsError(explain(error, client.meta.service_model.service_name, client.meta.config)) from error


def explain(error: Exception, service_name: str = "", config: Config | None = None) -> str:
    """What went wrong and, where we know it, what to check."""
    service = SERVICE_TITLES.get(service_name, service_name or "AWS")
    if isinstance(error, ClientError):
        return _explain_client_error(error, service_name or "aws")
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return (
            f"no AWS credentials configured ({error}) — give the worker an IAM role "
            "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(error, ReadTimeoutError):
        seconds = config.read_timeout if config else settings.AWS_READ_TIMEOUT_SECONDS
        return f"timed out after {seconds:g} s talking to {service}"
    if isinstance(error, ConnectTimeoutError):
        seconds = config.connect_timeout if config else settings.AWS_CONNECT_TIMEOUT_SECONDS
        return f"could not connect to {service} within {seconds:g} s ({error.kwargs.get('endpoint_url')})"
    if isinstance(error, EndpointConnectionError):
        return (
            f"could not reach {service} at {error.kwargs.get('endpoint_url')} "
            "— check the network, AWS_REGION and AWS_ENDPOINT_URL"
        )
    return f"{type(error).__name__} talking to {service}: {error}"


def _explain_client_error(error: ClientError, service_name: str) -> str:
    details = error.response.get("Error", {})
    code = details.get("Code", "Unknown")
    action = f"{service_name}:{error.operation_name}"
    if code in ACCESS_DENIED_CODES:
        return f"{code}: not allowed to call {action} — check the worker's IAM role"
    if code in THROTTLING_CODES:
        return f"{code}: AWS throttled {action} even after retries — the next run tries again"
    if code in BAD_CREDENTIALS_CODES:
        return f"{code}: AWS rejected the worker's credentials calling {action} — check its keys or IAM role"
    message = details.get("Message") or "no message"
    return f"{code} calling {action}: {message}"


# ---- Auto Scaling: what the fleet page and scaling actions call ---------------------------


def describe_autoscaling_group(client: BaseClient, group_name: str) -> dict:
    """The group as describe_auto_scaling_groups returns it; AwsError if it does not exist."""
    with explained_failures(client):
        groups = client.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    if not groups:
        raise AwsError(
            f"Auto Scaling group {group_name} not found in region {client.meta.region_name} "
            "— check the group name in the scaling group's settings"
        )
    return groups[0]


def set_autoscaling_desired_capacity(client: BaseClient, group_name: str, desired_capacity: int) -> None:
    # HonorCooldown=False: the dashboard enforces its own cooldown before calling AWS.
    try:
        client.set_desired_capacity(
            AutoScalingGroupName=group_name, DesiredCapacity=desired_capacity, HonorCooldown=False
        )
    except ClientError as error:
        raise AwsError(explain_scaling_error(error, group_name, desired_capacity)) from error
    except BotoCoreError as error:
        raise AwsError(explain(error, "autoscaling", client.meta.config)) from error


def explain_scaling_error(error: ClientError, group_name: str, desired_capacity: int) -> str:
    details = error.response.get("Error", {})
    code, message = details.get("Code", ""), details.get("Message") or ""
    if code == "ScalingActivityInProgress":
        return (
            f"AWS is still carrying out an earlier scaling activity of {group_name} and refused "
            f"to set it to {desired_capacity}: wait for it to finish, then try again"
        )
    if code == "ValidationError" and "not found" in message.lower():
        return f"Auto Scaling group {group_name} not found: {message}"
    if code == "ValidationError":
        return (
            f"AWS refused {desired_capacity} for {group_name}: {message} — the group's own min/max in AWS must allow it"
        )
    if code == "ResourceContention":
        return f"AWS was busy updating {group_name} (ResourceContention): try again in a moment"
    return _explain_client_error(error, "autoscaling")


# ---- Auto Scaling policies: AWS's own target tracking, driven from the fleet page ----------


def describe_scaling_policies(client: BaseClient, group_name: str) -> list[dict]:
    """Every scaling policy of the group (ours and any made outside the dashboard)."""
    policies: list[dict] = []
    with explained_failures(client):
        for page in client.get_paginator("describe_policies").paginate(AutoScalingGroupName=group_name):
            policies.extend(page["ScalingPolicies"])
    return policies


def put_target_tracking_policy(
    client: BaseClient,
    group_name: str,
    policy_name: str,
    target_cpu_percent: float,
    warmup_seconds: int,
    disable_scale_in: bool,
) -> str:
    """Create or update (same name) a target-tracking policy on average CPU; returns its ARN."""
    with explained_failures(client):
        answer = client.put_scaling_policy(
            AutoScalingGroupName=group_name,
            PolicyName=policy_name,
            PolicyType="TargetTrackingScaling",
            EstimatedInstanceWarmup=warmup_seconds,
            TargetTrackingConfiguration={
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
                "TargetValue": float(target_cpu_percent),
                "DisableScaleIn": disable_scale_in,
            },
        )
    return answer.get("PolicyARN", "")


def delete_scaling_policy(client: BaseClient, group_name: str, policy_name: str) -> None:
    """Delete the policy; one that is already gone is not an error (the wish is met)."""
    try:
        client.delete_policy(AutoScalingGroupName=group_name, PolicyName=policy_name)
    except ClientError as error:
        details = error.response.get("Error", {})
        if details.get("Code") == "ValidationError" and "not found" in (details.get("Message") or "").lower():
            return
        raise AwsError(_explain_client_error(error, "autoscaling")) from error
    except BotoCoreError as error:
        raise AwsError(explain(error, "autoscaling", client.meta.config)) from error


def describe_scaling_activities(client: BaseClient, group_name: str, max_records: int) -> list[dict]:
    """AWS's newest scaling activities of the group, newest first (what its console shows)."""
    with explained_failures(client):
        answer = client.describe_scaling_activities(AutoScalingGroupName=group_name, MaxRecords=max_records)
    return answer.get("Activities", [])
