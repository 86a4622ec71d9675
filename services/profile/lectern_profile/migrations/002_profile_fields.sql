-- The reader's background, as DESIGN.md "Profiles" lists it; every field may be unset (NULL).
ALTER TABLE profiles
    ADD COLUMN python_level text CHECK (python_level IN ('none', 'beginner', 'intermediate', 'advanced')),
    ADD COLUMN cpp_level text CHECK (cpp_level IN ('none', 'beginner', 'intermediate', 'advanced')),
    ADD COLUMN ai_ml_level text CHECK (ai_ml_level IN ('none', 'beginner', 'intermediate', 'advanced')),
    ADD COLUMN ros2_level text CHECK (ros2_level IN ('none', 'beginner', 'intermediate', 'advanced')),
    ADD COLUMN hardware_access text
        CHECK (hardware_access IN ('simulation_only', 'gpu_workstation', 'jetson', 'physical_robot')),
    ADD COLUMN operating_system text CHECK (operating_system IN ('linux', 'windows', 'macos')),
    ADD COLUMN answer_depth text CHECK (answer_depth IN ('brief', 'standard', 'detailed')),
    ADD COLUMN goals text CHECK (char_length(goals) <= 500),
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
