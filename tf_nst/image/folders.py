"""Folder walks that find images: each real folder visited once, each real file listed once.

A folder reached twice (a symbolic-link loop, a second link, a hard link) is counted, not walked
again, so a walk always ends and a photo reached through two paths is one photo.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import stat

from tf_nst.errors import StyleTransferError
from tf_nst.image.decoding import IMAGE_EXTENSIONS
from tf_nst.text import printable


@dataclasses.dataclass(frozen=True)
class ImageWalk:
    """What `walk_images` found under a folder.

    Attributes:
        files: The image files, sorted, each real file once.
        repeats: Folders and files left out because they were reached a second time: through a
            symbolic-link loop (`ln -s . again`), a second link to the same folder or file, or a
            hard link.
        unreadable: `(path, one-line reason)` of the image files that cannot be opened (a
            dangling symbolic link, a link loop) and of the folders that cannot be listed.
    """

    files: tuple[pathlib.Path, ...]
    repeats: int = 0
    unreadable: tuple[tuple[pathlib.Path, str], ...] = ()


def find_images(folder: str | os.PathLike) -> list[pathlib.Path]:
    """Returns the image files under `folder`, recursively, sorted, each real file once.

    See `walk_images`, which also counts what it left out.
    """
    return list(walk_images(folder).files)


def walk_images(folder: str | os.PathLike) -> ImageWalk:
    """Finds the image files under `folder`, recursively, visiting each real folder once.

    Hidden files and folders (names starting with ".") and files whose extension is not in
    `IMAGE_EXTENSIONS` are skipped. Symbolic links to folders are followed, but a folder is
    identified by its device and inode, so a link loop (`ln -s . again`) or a second link to a
    folder is walked once, and an image reached by two paths (links, hard links) is one image.
    Of several paths to the same folder or file, one that goes through no symbolic link is kept
    where there is one (folders reached without links are walked first), else the first found;
    entries are taken in sorted order, so the result does not depend on the file system's.

    Args:
        folder: The folder to search.

    Returns:
        The `ImageWalk`: the files, and the count and reasons of what was left out.

    Raises:
        StyleTransferError: If `folder` itself cannot be listed.
    """
    root = pathlib.Path(folder)
    try:
        status = os.stat(root)
    except OSError as error:
        raise _folder_error(root, error) from None
    # Folders to walk: (path, reached through a symbolic link, device and inode). A folder is
    # marked seen when it is walked, not when it is found, and the ones reached without a link
    # are all walked first: so a folder found through a link before its real path keeps that.
    direct = [(root, False, (status.st_dev, status.st_ino))]
    linked: list[tuple[pathlib.Path, bool, tuple[int, int]]] = []
    seen_folders: set[tuple[int, int]] = set()
    chosen: dict[tuple[int, int], tuple[bool, str]] = {}
    repeats = 0
    unreadable: list[tuple[pathlib.Path, str]] = []
    while direct or linked:
        directory, through_link, folder_key = direct.pop() if direct else linked.pop()
        if folder_key in seen_folders:
            repeats += 1
            continue
        seen_folders.add(folder_key)
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name, reverse=True)
        except OSError as error:
            if directory == root:
                raise _folder_error(root, error) from None
            unreadable.append((directory, _folder_error(directory, error).args[0]))
            continue
        for entry in entries:  # reversed: the stacks then pop the first name first
            if entry.name.startswith("."):
                continue
            path = pathlib.Path(directory, entry.name)
            is_image = path.suffix.lower() in IMAGE_EXTENSIONS
            try:
                is_link = entry.is_symlink()
                status = entry.stat()  # follows a link
            except OSError as error:
                if is_image:
                    unreadable.append((path, _entry_error(path, error)))
                continue
            key = (status.st_dev, status.st_ino)
            if stat.S_ISDIR(status.st_mode):
                if through_link or is_link:
                    linked.append((path, True, key))
                else:
                    direct.append((path, False, key))
            elif is_image:
                rank = (through_link or is_link, os.fspath(path))
                if key in chosen:
                    repeats += 1
                    rank = min(rank, chosen[key])
                chosen[key] = rank
    return ImageWalk(
        files=tuple(sorted(pathlib.Path(path) for _, path in chosen.values())),
        repeats=repeats,
        unreadable=tuple(sorted(unreadable)),
    )


def _folder_error(folder: pathlib.Path, error: OSError) -> StyleTransferError:
    label = printable(os.fspath(folder))
    if isinstance(error, PermissionError):
        return StyleTransferError(
            f"folder {label} cannot be read (permission denied): fix its permissions"
        )
    return StyleTransferError(
        f"folder {label} cannot be read ({error.strerror or error}): check the path"
    )


def _entry_error(path: pathlib.Path, error: OSError) -> str:
    label = printable(os.fspath(path))
    if os.path.islink(path):
        try:
            target = printable(os.readlink(path))
        except OSError:
            target = "?"
        if isinstance(error, FileNotFoundError):
            return (
                f"{label} is a symbolic link to {target}, which does not exist: remove the link "
                "or restore its target"
            )
        return (
            f"{label} is a symbolic link to {target}, which cannot be opened "
            f"({error.strerror or error}): fix or remove the link"
        )
    return f"{label} cannot be accessed ({error.strerror or error}): check the file"
