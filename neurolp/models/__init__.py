"""Model registry (``{variant}-{arch}`` names) and task models."""

from neurolp.models.registry import (ARCHS, VARIANTS, ArchSpec, ModelName, VariantSpec, create_model, is_registry_name,
                                     list_archs, list_models, parse_model_name, register_arch, register_variant)
from neurolp.models.summary import check_input_size, count_macs, count_params, model_summary

__all__ = ["ARCHS", "VARIANTS", "ArchSpec", "ModelName", "VariantSpec", "create_model", "is_registry_name", "list_archs",
           "list_models", "parse_model_name", "register_arch", "register_variant", "count_params", "count_macs",
           "model_summary", "check_input_size"]
