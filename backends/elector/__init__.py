"""ELECTOR: the accelerator backend of TransCODE.

Part 1 (this package so far): the hardware DSL (``.hwdsl``), the
:class:`Accelerator` model, technology tables with their sources, the design
library, design spaces and the area model.  Importing this package loads lark
and the standard library only (no z3, no torch).

Typical use::

    from backends.elector import resolve_design, area_breakdown
    edge = resolve_design("acceltran-edge")
    area_breakdown(edge).total_mm2                      # 54.06...
    edge.module_costs("softmax").dynamic_mw              # at the design's clock
    edge.technology.module("softmax", tile=16).area_um2  # table lookup
    edge.main_memory_costs().energy_per_access_nj        # 13.44
"""

from __future__ import annotations

from backends.elector.area import (
    AreaBreakdown,
    AreaRow,
    ModuleInstance,
    area_breakdown,
    module_inventory,
)
from backends.elector.design import (
    BUFFER_KINDS,
    Accelerator,
    Buffer,
    DesignFieldError,
    LayerNormUnit,
    MainMemory,
    MappingDefaults,
    PEArray,
    SoftmaxUnits,
    SparsityUnits,
    validate_design,
)
from backends.elector.design_library import (
    LIBRARY_DIR,
    LibraryEntry,
    is_space_file,
    list_library,
    resolve_design,
    resolve_space,
)
from backends.elector.hwdsl import format_design, load_design, parse_design
from backends.elector.space import DesignSpace, Parameter, format_space, load_space, parse_space
from backends.elector.technology import (
    BufferCosts,
    MainMemoryCosts,
    ModuleCosts,
    Technology,
    TechnologyError,
    list_technologies,
    load_technology,
    technology_from_data,
)

__all__ = [
    "BUFFER_KINDS",
    "LIBRARY_DIR",
    "Accelerator",
    "AreaBreakdown",
    "AreaRow",
    "Buffer",
    "BufferCosts",
    "DesignFieldError",
    "DesignSpace",
    "LayerNormUnit",
    "LibraryEntry",
    "MainMemory",
    "MainMemoryCosts",
    "MappingDefaults",
    "ModuleCosts",
    "ModuleInstance",
    "PEArray",
    "Parameter",
    "SoftmaxUnits",
    "SparsityUnits",
    "Technology",
    "TechnologyError",
    "area_breakdown",
    "format_design",
    "format_space",
    "is_space_file",
    "list_library",
    "list_technologies",
    "load_design",
    "load_space",
    "load_technology",
    "module_inventory",
    "parse_design",
    "parse_space",
    "resolve_design",
    "resolve_space",
    "technology_from_data",
    "validate_design",
]
