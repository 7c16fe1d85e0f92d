-- The display name identity gives each user (from its identity.user.named notices), for the
-- learner view. Kept apart from profiles: a name can arrive before the profile exists.
CREATE TABLE display_names (
    user_id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    -- The notice's time: an older notice delivered late does not overwrite a newer name.
    named_at BIGINT NOT NULL
);
