"""Artifact plumbing shared by every stage: atomic writes, hashes, JSON headers, npz payloads.

Every stage output is a JSON header (a pydantic model with ``schema_version`` and
``provenance``) plus optional payload files (``.npz`` arrays, meshes). All writes go to a
temporary file in the destination directory and are renamed into place, so a crash never
leaves a half-written artifact behind.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sculptor import __version__
from sculptor.errors import UserError

T = TypeVar("T", bound="Artifact")


# --------------------------------------------------------------------------- atomic writes
def _umask() -> int:
    """The process umask (os.umask can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same dir, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; an output is an ordinary file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Compressed .npz, byte-for-byte reproducible (fixed zip timestamps, sorted order),
    readable by ``np.load``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.asarray(arrays[key]), allow_pickle=False)
            zf.writestr(info, arr.getvalue())
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_mesh(path: str | os.PathLike, mesh: Any) -> Path:
    """Write a trimesh mesh atomically; the format follows the suffix (.stl, .ply, .obj)."""
    path = Path(path)
    data = mesh.export(file_type=path.suffix.lstrip(".").lower())
    if isinstance(data, str):
        data = data.encode("utf-8")
    return atomic_write_bytes(path, data)


@contextlib.contextmanager
def atomic_output_dir(out: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Build a whole output directory in a sibling temp dir and move it into place at the end.

    On any exception the temp dir is removed and ``out`` is left as it was, so a failed
    run never leaves half an output behind. An existing ``out`` is replaced only once the
    new one is complete (its old content is kept in ``out`` until then).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory; choose another path")
    if out.exists() and not overwrite and any(out.iterdir()):
        raise UserError(f"--out {out} is not empty; choose a new directory or remove it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; an output dir is an ordinary dir
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


# --------------------------------------------------------------------------- hashes
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# --------------------------------------------------------------------------- headers
def _now_utc() -> str:
    """Creation time; ``$SOURCE_DATE_EPOCH`` pins it for byte-reproducible artifacts."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = (_dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch and epoch.isdigit()
         else _dt.datetime.now(_dt.timezone.utc))
    return t.isoformat(timespec="seconds")


class Provenance(BaseModel):
    """Who made an artifact, from what, with which parameters."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(description="producing command, e.g. 'sculptor cam'")
    parameters: dict[str, Any] = Field(default_factory=dict)
    sculptor_version: str = __version__
    created_utc: str = Field(default_factory=lambda: _now_utc())
    inputs: dict[str, str] = Field(
        default_factory=dict, description="input name -> sha256 of its bytes"
    )

    @classmethod
    def make(
        cls, command: str, parameters: Mapping[str, Any] | None = None,
        inputs: Mapping[str, str | os.PathLike] | None = None,
    ) -> "Provenance":
        """Provenance with hashes of the given input files (name -> path)."""
        hashes = {}
        for name, p in (inputs or {}).items():
            p = Path(p)
            hashes[name] = sha256_file(p) if p.is_file() else "missing"
        params = {k: _jsonable(v) for k, v in (parameters or {}).items()}
        return cls(command=command, parameters=params, inputs=hashes)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, os.PathLike):
        return str(v)
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


class Artifact(BaseModel):
    """Base of every stage artifact: a JSON header with schema version and provenance.

    Subclasses set ``KIND`` and ``SCHEMA_VERSION``; payload arrays live next to the JSON
    in an ``.npz`` with the same stem (see :meth:`save` / :meth:`load`).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    KIND: ClassVar[str] = "artifact"
    SCHEMA_VERSION: ClassVar[int] = 1

    kind: str = ""
    schema_version: int = 0
    provenance: Provenance

    def model_post_init(self, __context: Any) -> None:
        if not self.kind:
            self.kind = self.KIND
        if not self.schema_version:
            self.schema_version = self.SCHEMA_VERSION

    # payload hooks ---------------------------------------------------------------
    def payload_arrays(self) -> dict[str, np.ndarray]:
        """Arrays to store in the companion .npz (none by default)."""
        return {}

    def attach_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Receive the arrays read back from the companion .npz."""

    # io ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (.json) and, if there are arrays, ``path`` with suffix .npz."""
        path = Path(path)
        arrays = self.payload_arrays()
        if arrays:
            atomic_write_npz(path.with_suffix(".npz"), arrays)
        header = json.loads(self.model_dump_json())
        if arrays:
            header["payload"] = path.with_suffix(".npz").name
        atomic_write_json(path, header)
        return path

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        path = Path(path)
        if path.is_dir():
            raise UserError(f"{path} is a directory; give the {cls.KIND} JSON file inside it")
        if not path.is_file():
            raise UserError(f"{cls.KIND} file not found: {path}")
        try:
            header = json.loads(path.read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{path} is not a valid {cls.KIND} JSON file ({e.__class__.__name__})")
        if not isinstance(header, dict):
            raise UserError(f"{path} is not a {cls.KIND} artifact")
        kind = header.get("kind")
        if kind != cls.KIND:
            raise UserError(f"{path} holds a '{kind}' artifact, expected '{cls.KIND}'")
        version = header.get("schema_version")
        if version != cls.SCHEMA_VERSION:
            raise UserError(
                f"{path} has {cls.KIND} schema_version {version}, this sculptor reads "
                f"{cls.SCHEMA_VERSION}; re-run the stage that made it"
            )
        payload = header.pop("payload", None)
        try:
            obj = cls.model_validate(header)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise UserError(f"{path}: invalid {cls.KIND} field '{loc}': {first['msg']}")
        if payload:
            npz = path.parent / payload
            if not npz.is_file():
                raise UserError(f"{path}: its payload {npz.name} is missing")
            try:
                with np.load(npz, allow_pickle=False) as z:
                    obj.attach_arrays({k: z[k] for k in z.files})
            except (OSError, ValueError) as e:
                raise UserError(f"{npz} is corrupt ({e}); re-run the stage that made it")
        return obj


def warn(msg: str) -> None:
    """One-line warning on stderr (documented fallbacks, not errors)."""
    print(f"warning: {msg}", file=sys.stderr)
