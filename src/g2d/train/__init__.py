"""Trainers: unimodal teachers, teacher-output caching, multimodal students."""
