"""S3 through boto3 (the only module that talks to it): streamed multipart uploads with flat memory, presigned
download links, and objects read back line by line (imports).

Calls run in threads (boto3 is blocking). An upload holds at most one part in memory (``PART_SIZE``): chunks are
gathered until a part is full, then sent; a small object is sent in one ``put_object``. A failed upload is aborted,
so no half object is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.adapters.aws import AwsConfig
from core.settings import Settings

#: S3's minimum part size is 5 MiB (except the last part).
PART_SIZE = 8 * 1024 * 1024


class StorageError(Exception):
    """S3 refused or could not be reached; ``code`` is S3's error code when there is one."""

    def __init__(self, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        self.code = code


class ObjectStore:
    def __init__(self, config: AwsConfig) -> None:
        session = boto3.session.Session(
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            region_name=config.region,
        )
        self._client: Any = session.client(
            "s3",
            endpoint_url=config.endpoint_url,
            config=Config(
                region_name=config.region,
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"total_max_attempts": 3, "mode": "standard"},
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
            ),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        return cls(AwsConfig.from_settings(settings))

    async def _call(self, method: str, **kw: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._client, method), **kw)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            raise StorageError(f"S3 {method} failed: {code}", code) from None
        except BotoCoreError as exc:
            raise StorageError(f"S3 {method} failed: {type(exc).__name__}") from None

    async def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket if it does not exist (the platform's own; a tenant's must exist already)."""
        try:
            await self._call("head_bucket", Bucket=bucket)
        except StorageError:
            await self._call("create_bucket", Bucket=bucket, CreateBucketConfiguration=self._location())

    def _location(self) -> dict[str, str]:
        return {"LocationConstraint": self._client.meta.region_name}

    async def upload(self, bucket: str, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        """Stream ``chunks`` into ``bucket/key``; returns the bytes written."""
        part = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        total = 0
        try:
            async for chunk in chunks:
                part += chunk
                total += len(chunk)
                if len(part) >= PART_SIZE:
                    if upload_id is None:
                        started = await self._call(
                            "create_multipart_upload", Bucket=bucket, Key=key, ContentType=content_type
                        )
                        upload_id = started["UploadId"]
                    number = len(parts) + 1
                    sent = await self._call(
                        "upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(part)
                    )
                    parts.append({"ETag": sent["ETag"], "PartNumber": number})
                    part = bytearray()
            if upload_id is None:
                await self._call("put_object", Bucket=bucket, Key=key, Body=bytes(part), ContentType=content_type)
                return total
            if part:
                number = len(parts) + 1
                sent = await self._call(
                    "upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(part)
                )
                parts.append({"ETag": sent["ETag"], "PartNumber": number})
            await self._call(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            return total
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(StorageError):
                    await self._call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    def presigned_get(self, bucket: str, key: str, seconds: int) -> str:
        """A link that downloads the object without credentials for ``seconds``."""
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=seconds
        )
        return url

    async def read(self, bucket: str, key: str, *, limit: int) -> bytes:
        """The whole object (imports; refused beyond ``limit`` bytes)."""
        head = await self._call("head_object", Bucket=bucket, Key=key)
        if int(head.get("ContentLength", 0)) > limit:
            raise StorageError(f"the object is larger than {limit} bytes", "TooLarge")
        found = await self._call("get_object", Bucket=bucket, Key=key)
        body: bytes = await asyncio.to_thread(found["Body"].read)
        return body

    def close(self) -> None:
        self._client.close()
