"""Weight files: where they come from, how they are verified and cached, and how they are read.

- :mod:`.files`: reading checkpoint files safely (format from the bytes, never unpickling code)
  and writing safetensors atomically;
- :mod:`.cache`: the cache folder and the offline switch;
- :mod:`.urls`: verified downloads from plain URLs;
- :mod:`.hf`: files of Hugging Face Hub repositories;
- :mod:`.sources`: a weight source (Hub, URL, packaged, local) -> a verified local file;
- :mod:`.registered`: the pretrained weights the registry names.

Environment: ``SRZOO_HOME`` (cache folder), ``SRZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` (use the
cache only), ``SRZOO_DOWNLOAD_TIMEOUT`` (seconds without data before a URL download fails,
default 30).
"""

from __future__ import annotations

from .cache import cache_home, is_offline
from .files import (
    PICKLE_SUFFIXES,
    WRAPPER_KEYS,
    StateDict,
    checkpoint_format,
    file_sha256,
    read_state_dict,
    save_safetensors_atomic,
    sha256_file,
    unwrap_state_dict,
)
from .hf import hub_download
from .registered import download, load_registered_weights, registered_weights
from .sources import PACKAGE_DATA, Source, fetch, parse_source

__all__ = [
    "PACKAGE_DATA",
    "PICKLE_SUFFIXES",
    "WRAPPER_KEYS",
    "Source",
    "StateDict",
    "cache_home",
    "checkpoint_format",
    "download",
    "fetch",
    "file_sha256",
    "hub_download",
    "is_offline",
    "load_registered_weights",
    "parse_source",
    "read_state_dict",
    "registered_weights",
    "save_safetensors_atomic",
    "sha256_file",
    "unwrap_state_dict",
]
