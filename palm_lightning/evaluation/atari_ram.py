"""AtariARI's RAM annotations: which byte of the 128-byte Atari RAM holds which state variable.

Source: the AtariARI benchmark of Anand et al. 2019, "Unsupervised State Representation Learning
in Atari" (NeurIPS), repository ``mila-iqia/atari-representation-learning``, files
``atariari/benchmark/ram_annotations.py`` (the indices) and ``atariari/benchmark/categorization.py``
(the categories), read at commit ``a06f52c``. The values below are those facts restated as data;
AtariARI's list- and range-valued entries (e.g. Breakout's ``block_bit_map = range(30)``) are
expanded as AtariARI itself expands them: the loop at the end of its ``ram_annotations.py``
("break up any lists") replaces each by one variable per byte named ``"%s_%i" % (name, i)``, so
the labels its ``AtariARIWrapper`` reports, and its probes score, are ``<name>_<i>`` bytes.

AtariARI assigns categories by name rules; the category of each variable here is the result of
those rules, written out so that the table is the single reference (``tests/test_atari_probe.py``
re-derives them from the rules as a check):

- localisation = names containing ``_x``, ``_y``, ``_z`` or ``_column``; of those, names with
  ``ball`` or ``missile`` are *small-object* localisation, names with ``player``/``agent`` (and no
  small object) are *agent* localisation, the rest *other* localisation;
- *score/clock/lives/display*: ``score``, ``clock``, ``lives``, ``meter``, ``display``;
- *misc*: ``count``, ``bit_map``/``existence``, ``level``/``room``, ``direction``.

Only the games of :data:`~palm_lightning.datamodules.atari.frames.DEFAULT_GAMES` are listed; AtariARI
annotates 22 games and more can be added in the same form. Keys are ALE ROM ids (``ale_py.roms``).
"""

from __future__ import annotations

from typing import Final

AGENT = "agent_localization"
SMALL_OBJECT = "small_object_localization"
OTHER = "other_localization"
SCORE = "score_clock_lives_display"
MISC = "misc"

CATEGORIES: Final = (AGENT, SMALL_OBJECT, OTHER, SCORE, MISC)
"""AtariARI's five summary categories, in the order its tables report them."""


def _series(name: str, first: int, count: int, category: str) -> dict[str, tuple[int, str]]:
    """``<name>_0 … <name>_{count-1}`` at consecutive RAM bytes from ``first`` (AtariARI's expansion of a range)."""
    return {f"{name}_{i}": (first + i, category) for i in range(count)}


RAM_ANNOTATIONS: Final[dict[str, dict[str, tuple[int, str]]]] = {
    "pong": {
        "player_y": (51, AGENT),
        "player_x": (46, AGENT),
        "enemy_y": (50, OTHER),
        "enemy_x": (45, OTHER),
        "ball_x": (49, SMALL_OBJECT),
        "ball_y": (54, SMALL_OBJECT),
        "enemy_score": (13, SCORE),
        "player_score": (14, SCORE),
    },
    "breakout": {
        "ball_x": (99, SMALL_OBJECT),
        "ball_y": (101, SMALL_OBJECT),
        "player_x": (72, AGENT),
        "blocks_hit_count": (77, MISC),
        "score": (84, SCORE),
        **_series("block_bit_map", 0, 30, MISC),
    },
    "boxing": {
        "player_x": (32, AGENT),
        "player_y": (34, AGENT),
        "enemy_x": (33, OTHER),
        "enemy_y": (35, OTHER),
        "enemy_score": (19, SCORE),
        "clock": (17, SCORE),
        "player_score": (18, SCORE),
    },
    "ms_pacman": {
        "enemy_sue_x": (6, OTHER),
        "enemy_inky_x": (7, OTHER),
        "enemy_pinky_x": (8, OTHER),
        "enemy_blinky_x": (9, OTHER),
        "enemy_sue_y": (12, OTHER),
        "enemy_inky_y": (13, OTHER),
        "enemy_pinky_y": (14, OTHER),
        "enemy_blinky_y": (15, OTHER),
        "player_x": (10, AGENT),
        "player_y": (16, AGENT),
        "fruit_x": (11, OTHER),
        "fruit_y": (17, OTHER),
        "ghosts_count": (19, MISC),
        "player_direction": (56, MISC),
        "dots_eaten_count": (119, MISC),
        "player_score": (120, SCORE),
        "num_lives": (123, SCORE),
    },
    "seaquest": {
        "player_x": (70, AGENT),
        "player_y": (97, AGENT),
        "player_direction": (86, MISC),
        "player_missile_direction": (87, MISC),
        "oxygen_meter_value": (102, SCORE),
        "player_missile_x": (103, SMALL_OBJECT),
        "num_lives": (59, SCORE),
        "divers_collected_count": (62, MISC),
        **_series("enemy_obstacle_x", 30, 4, OTHER),
        **_series("diver_or_enemy_missile_x", 71, 4, SMALL_OBJECT),
        **_series("score", 57, 2, SCORE),
    },
    "freeway": {
        "player_y": (14, AGENT),
        "score": (103, SCORE),
        **_series("enemy_car_x", 108, 10, OTHER),
    },
}
"""ALE ROM id → {variable: (RAM index, AtariARI category)}."""


def annotated_games() -> tuple[str, ...]:
    """ROM ids that have annotations, sorted."""
    return tuple(sorted(RAM_ANNOTATIONS))


def game_annotations(game: str) -> dict[str, tuple[int, str]]:
    """The annotations of one game (its ALE ROM id, e.g. ``"ms_pacman"``); a ``KeyError`` lists the annotated ones."""
    try:
        return RAM_ANNOTATIONS[game]
    except KeyError:
        raise KeyError(
            f"no AtariARI RAM annotations for {game!r}; annotated games: {', '.join(annotated_games())}"
        ) from None
