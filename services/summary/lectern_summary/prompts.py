"""The prompts. PROMPT_VERSION is part of every cache key: change it whenever a prompt changes
so that texts made with the old prompt are no longer served."""

from __future__ import annotations

PROMPT_VERSION = "2026-11-22.1"

BOOK = "Physical AI & Humanoid Robotics"

SUMMARY_SYSTEM = f"""You summarise one chapter of the textbook "{BOOK}" for its readers.
Write 4 to 8 short Markdown bullet points with the chapter's main ideas, in the chapter's own
terms. Use only what the chapter says; never add facts. Do not include code."""

PART_SUMMARY_SYSTEM = f"""You take notes on one part of a long chapter of the textbook "{BOOK}".
Write at most 6 short Markdown bullet points with the main ideas of this part only. Use only
what the text says. Do not include code."""

REDUCE_SYSTEM = f"""You combine notes on the parts of one chapter of the textbook "{BOOK}" into
one summary: 4 to 8 short Markdown bullet points with the chapter's main ideas. Use only what
the notes say; never add facts."""

_PROTECTED_RULES = """Rules you must follow:
- The text contains markers like [[CODE 1]]. Each stands for a code block or formula from the
  original. Write every marker exactly as it is, on its own line, where the block belongs. Never
  write the code or formula yourself and never change a marker.
- Keep commands, inline code (`like this`), file names, URLs, package and API names exactly as
  they are.
- Keep the Markdown structure: the same headings in the same order, lists, links.
- Never add facts that are not in the original."""

PERSONALIZED_SYSTEM = f"""You rewrite one chapter of the textbook "{BOOK}" for a group of
readers, described by their audience segment (experience levels and hardware access). Explain
more where they lack background, less where they already know it, and relate the hardware
advice to what they have. Keep the chapter's content and order.
{_PROTECTED_RULES}"""

TRANSLATION_SYSTEM = f"""You translate one chapter of the textbook "{BOOK}".
Translate the prose faithfully. Keep technical terms that readers will meet in tools and
documentation (ROS 2, node, topic, service, action, Gazebo, URDF, SDF, launch file, ...) in
English, optionally followed by a translation in parentheses the first time.
{_PROTECTED_RULES}"""


_HARDWARE = {
    "simulation_only": "no robot hardware: they work in simulation only",
    "gpu_workstation": "a GPU workstation (simulation and training), no robot",
    "jetson": "an NVIDIA Jetson board",
    "physical_robot": "a physical robot",
}


def describe_segment(segment: str) -> str:
    """Plain words for the profile service's `<experience>-<hardware_access>` segments (any
    other segment is passed on as it is)."""
    experience, _, hardware = segment.partition("-")
    if experience in ("beginner", "intermediate", "advanced") and hardware in _HARDWARE:
        return (
            f"{experience} overall experience with Python, C++, AI/ML and ROS 2; "
            f"hardware: {_HARDWARE[hardware]}"
        )
    return segment


def _code_reference(codes: list[str], preview_chars: int) -> str:
    if not codes:
        return ""
    shown = []
    for n, code in enumerate(codes, 1):
        body = code if len(code) <= preview_chars else code[:preview_chars] + "\n[...]"
        shown.append(f"[[CODE {n}]]:\n{body}")
    return "\n\nFor context only (write the markers, not these blocks):\n\n" + "\n\n".join(shown)


def summary_prompt(title: str, text: str) -> str:
    return f'Chapter: {title}\n\n{text}\n\nNow write the summary of the chapter "{title}".'


def part_summary_prompt(title: str, text: str, index: int, total: int) -> str:
    return (
        f"Chapter: {title} (part {index} of {total})\n\n{text}\n\n"
        f'Now write the notes on part {index} of the chapter "{title}".'
    )


def reduce_prompt(title: str, notes: list[str]) -> str:
    joined = "\n\n".join(f"Part {n}:\n{note}" for n, note in enumerate(notes, 1))
    return f'Chapter: {title}\n\n{joined}\n\nNow write the summary of the chapter "{title}".'


def _part_label(index: int, total: int) -> str:
    if total == 1:
        return ""
    return f" (part {index} of {total}; continue where the previous part ended)"


def personalized_prompt(
    *,
    title: str,
    segment: str,
    masked: str,
    codes: list[str],
    index: int,
    total: int,
    preview_chars: int,
) -> str:
    return (
        f"Audience segment: {segment} ({describe_segment(segment)})\n"
        f"Chapter: {title}{_part_label(index, total)}\n\n"
        f"{masked}{_code_reference(codes, preview_chars)}\n\n"
        f'Now rewrite the chapter "{title}" for readers in segment {segment}.'
    )


def translation_prompt(
    *,
    title: str,
    language: str,
    masked: str,
    codes: list[str],
    index: int,
    total: int,
    preview_chars: int,
) -> str:
    return (
        f"Target language: {language}\nChapter: {title}{_part_label(index, total)}\n\n"
        f"{masked}{_code_reference(codes, preview_chars)}\n\n"
        f'Now translate the chapter "{title}" into {language}.'
    )
