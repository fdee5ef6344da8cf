"""WebDataset tar shards and safetensors files, valid or lying, written with
the standard library only."""

import json
import struct
import tarfile


def tar_members(members) -> bytes:
    """Tar members, each a header and its data padded to 512 bytes, without
    the end-of-archive blocks: `members` is a list of (name, bytes)."""
    out = bytearray()
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        out += info.tobuf(format=tarfile.USTAR_FORMAT) + data + b"\0" * (-len(data) % 512)
    return bytes(out)


def tar_shard(members) -> bytes:
    """A WebDataset shard: the members, then the two zero blocks that end
    an archive."""
    return tar_members(members) + b"\0" * 1024


def tar_member_header(name: str, claimed_size: int) -> bytes:
    """One tar member header claiming `claimed_size` bytes (GNU base-256
    size field when it does not fit in octal), with no data after it."""
    info = tarfile.TarInfo(name)
    info.size = claimed_size
    info.mtime = 0
    return info.tobuf(format=tarfile.GNU_FORMAT)


def read_safetensors(data: bytes):
    """(header dict, data bytes) of a safetensors file."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def write_safetensors(header: dict, body: bytes) -> bytes:
    """A safetensors file: 8-byte little-endian header length, the JSON
    header padded with spaces to 8 bytes, then the tensor bytes."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def with_tensor_filled(data: bytes, name: str, value: float, count=None) -> bytes:
    """The checkpoint `data` with the first `count` (default: all) f32
    values of tensor `name` set to `value`."""
    header, body = read_safetensors(data)
    begin, end = header[name]["data_offsets"]
    assert header[name]["dtype"] == "F32"
    n = (end - begin) // 4 if count is None else count
    body = bytearray(body)
    body[begin : begin + 4 * n] = struct.pack(f"<{n}f", *([value] * n))
    return write_safetensors(header, bytes(body))


def with_header_edit(data: bytes, edit) -> bytes:
    """The checkpoint `data` with `edit(header)` applied to its JSON header."""
    header, body = read_safetensors(data)
    edit(header)
    return write_safetensors(header, body)


def with_model_config(data: bytes, edit) -> bytes:
    """The checkpoint `data` with `edit(config)` applied to the model config
    it carries (metadata key `reclip.model_config`)."""

    def edit_header(header):
        config = json.loads(header["__metadata__"]["reclip.model_config"])
        edit(config)
        header["__metadata__"]["reclip.model_config"] = json.dumps(config)

    return with_header_edit(data, edit_header)
