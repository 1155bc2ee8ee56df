"""Which Allen Brain Observatory experiments the paper used, and how their depths map to layers.

Kwon et al. (ICLR 2025, App. A.10): five visual areas (VISal, VISam, VISl, VISp, VISpm), three
excitatory Cre lines (Cux2-CreERT2, Emx1-IRES-Cre, Slc17a7-IRES2-Cre) and "Layer 2/3 (depth range of
175 to 275 µm)", natural scenes (session ``three_session_B``).

The depth range is made explicit as the Allen imaging depths that fall in [175, 275] µm:
175, 185, 195, 200, 205, 225, 250, 265 and 275 µm. Under the Allen Institute's own layer assignment
(de Vries et al. 2020; AllenInstitute/visual_coding_2p_analysis), depths below 200 µm are L2/3 and
200–300 µm are **L4**, so the paper's "L2/3" selection also contains L4 planes (mostly the 275 µm
Cux2/Emx1/Slc17a7 planes). neurolp keeps the paper's depth list as the default but labels every
experiment with its Allen layer (:func:`cortical_layer`), and ``--depths 175 185 195`` restricts to
true L2/3.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from neurolp.errors import InputError

__all__ = ["PAPER_AREAS", "PAPER_CRE_LINES", "PAPER_DEPTHS", "ALL_AREAS", "ALLEN_CRE_LINES",
           "NATURAL_SCENES_SESSION", "Selection", "cortical_layer", "L4_CRE_LINES"]

PAPER_AREAS: tuple[str, ...] = ("VISal", "VISam", "VISl", "VISp", "VISpm")
ALL_AREAS: tuple[str, ...] = ("VISal", "VISam", "VISl", "VISp", "VISpm", "VISrl")
PAPER_CRE_LINES: tuple[str, ...] = ("Cux2-CreERT2", "Emx1-IRES-Cre", "Slc17a7-IRES2-Cre")
PAPER_DEPTHS: tuple[int, ...] = (175, 185, 195, 200, 205, 225, 250, 265, 275)
NATURAL_SCENES_SESSION = "three_session_B"
#: The 13 Cre driver lines of the Brain Observatory Visual Coding 2-photon data (de Vries et al. 2020).
ALLEN_CRE_LINES: tuple[str, ...] = (
    "Cux2-CreERT2", "Emx1-IRES-Cre", "Fezf2-CreER", "Nr5a1-Cre", "Ntsr1-Cre_GN220", "Pvalb-IRES-Cre",
    "Rbp4-Cre_KL100", "Rorb-IRES2-Cre", "Scnn1a-Tg3-Cre", "Slc17a7-IRES2-Cre", "Sst-IRES-Cre",
    "Tlx3-Cre_PL56", "Vip-IRES-Cre")
# Cre lines the Allen layer assignment always puts in L4, whatever the depth.
L4_CRE_LINES: tuple[str, ...] = ("Nr5a1-Cre", "Scnn1a-Tg3-Cre", "Rorb-IRES2-Cre")


def cortical_layer(depth_um: float | None, cre_line: str | None = None) -> str:
    """The Allen Brain Observatory layer of an imaging plane.

    Rule (de Vries et al. 2020 / the Allen analysis code): L4-specific Cre lines → ``"L4"``;
    otherwise depth < 200 µm → ``"L2/3"``, < 300 µm → ``"L4"``, < 500 µm → ``"L5"``, else ``"L6"``.
    """
    if cre_line and any(cre_line.lower().startswith(c.split("-")[0].lower()) for c in L4_CRE_LINES):
        return "L4"
    if depth_um is None:
        return "unknown"
    d = float(depth_um)
    if d < 200:
        return "L2/3"
    if d < 300:
        return "L4"
    if d < 500:
        return "L5"
    return "L6"


@dataclass(frozen=True)
class Selection:
    """Areas × Cre lines × imaging depths (µm) of natural-scene experiments; defaults: the paper's."""

    areas: tuple[str, ...] = PAPER_AREAS
    cre_lines: tuple[str, ...] = PAPER_CRE_LINES
    depths: tuple[int, ...] = PAPER_DEPTHS
    session_type: str = NATURAL_SCENES_SESSION
    include_failed: bool = False
    _norm: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        from neurolp.utils.checks import check_choices, check_int

        areas = tuple(str(a) for a in (self.areas or ()))
        cres = tuple(str(c) for c in (self.cre_lines or ()))
        depths = tuple(sorted({check_int(d, "--depths", min=0, max=1000) for d in (self.depths or ())}))
        if not areas or not cres or not depths:
            raise InputError("a selection needs at least one area, one Cre line and one depth "
                             f"(got areas={areas}, cre_lines={cres}, depths={depths})")
        # typos would silently select nothing: names are checked against the Allen vocabulary
        areas = tuple(dict.fromkeys(check_choices(areas, "--areas", ALL_AREAS, what="visual area",
                                                  case_sensitive=False)))
        cres = tuple(dict.fromkeys(check_choices(cres, "--cre-lines", ALLEN_CRE_LINES, what="Cre line",
                                                 case_sensitive=False)))
        object.__setattr__(self, "areas", areas)
        object.__setattr__(self, "cre_lines", cres)
        object.__setattr__(self, "depths", depths)

    def matches(self, area: str | None, cre_line: str | None, depth: int | None) -> bool:
        cre_ok = cre_line is not None and cre_line.lower() in {c.lower() for c in self.cre_lines}
        return area in self.areas and cre_ok and depth is not None and int(depth) in self.depths

    def to_dict(self) -> dict:
        return {"areas": list(self.areas), "cre_lines": list(self.cre_lines),
                "depths": list(self.depths), "session_type": self.session_type,
                "include_failed": self.include_failed}

    def describe(self) -> str:
        layers = sorted({cortical_layer(d) for d in self.depths})
        return (f"{len(self.areas)} areas ({', '.join(self.areas)}), Cre lines "
                f"{', '.join(self.cre_lines)}, depths {', '.join(map(str, self.depths))} µm "
                f"(Allen layers {', '.join(layers)}), session {self.session_type}")
