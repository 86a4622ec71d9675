"""Sentence/passage pairs written over the sample book (book/) that calibrate the chat's
citation check (services/chat/lectern_chat/citations.py): sentences five of its sections
support, and sentences they do not (true but from another section, or partly invented with
some of the passage's words). tests/unit/test_citation_checks.py asserts on them;
bench/citation_checks_bench.py --embeddings compares an embedding score on them."""

from __future__ import annotations

from lectern_dev.harness.books import BOOK_DIR


def section(chapter: str, heading: str) -> str:
    """One section of the sample book, as a search result's passage would hold it."""
    text = next(BOOK_DIR.glob(f"{chapter}*")).read_text()
    return heading + "\n" + text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


SOURCES = [
    section("05-sensors", "The inertial measurement unit"),
    section("05-sensors", "Lidar"),
    section("03-simulation-gazebo", "Bridging Gazebo and ROS 2"),
    section("07-control", "Feedback and the PID controller"),
    section("08-humanoid-locomotion", "Support polygon and centre of pressure"),
]

SUPPORTED = [
    "An IMU reports angular velocity and linear acceleration [1].",
    "For a walking robot, the IMU in the pelvis tells the balance controller which way is"
    " down [1].",
    "Gyroscopes drift over time while accelerometers are noisy, so a Kalman filter fuses them [1].",
    "Many IMUs also estimate the orientation as a quaternion [1].",
    "Accelerometer readings are noisy yet do not drift, whereas gyros are smooth but wander, so"
    " both get fused [1].",
    "A lidar is accurate and works in darkness, so it is the default for mapping [2].",
    "A planar lidar is published as a LaserScan message with an array of ranges [2].",
    "In the bridge, `]` sends data from ROS to Gazebo and `@` makes it bidirectional [3].",
    "Gazebo has its own transport layer, so its topics must be bridged to ROS 2 topics [3].",
    "A wrong bracket direction is a classic reason why a robot ignores velocity commands [3].",
    "The direction of each bracket in the bridge arguments decides which way data flows [3].",
    "The integral term of a PID controller removes steady errors such as the sag from gravity [4].",
    "The derivative term damps the motion and reduces overshoot [4].",
    "Raise Kp first; the derivative term then damps the oscillation it causes [4].",
    "The centre of pressure always lies inside the support polygon because the ground can only"
    " push [5].",
    "If a motion would push the centre of pressure outside the feet's contact area, the foot"
    " tips [5].",
    # Paraphrases sharing few words with the passage: the lexical score misses these two.
    "The pelvis IMU is the key sensor that lets a biped keep its balance [1].",
    "Lidar keeps working in the dark, which is why mapping usually relies on it [2].",
]
MISSED_PARAPHRASES = 2

UNSUPPORTED = [
    # True, but from another source than the one cited.
    "An IMU reports angular velocity and linear acceleration [2].",
    "A lidar measures distances with laser pulses [1].",
    "The integral term removes steady errors [5].",
    "The bridge translates between Gazebo and ROS 2 topics [4].",
    "The zero moment point is where the horizontal moments of gravity and inertia cancel [5].",
    "Camera images should carry hardware timestamps checked against the TF tree [2].",
    "Start every ROS node of a simulated robot with use_sim_time set to true [3].",
    "Depth cameras struggle with shiny and transparent surfaces [2].",
    "Domain randomisation varies friction and masses in every training episode [3].",
    # Invented, in whole or in part, with some of the passage's words.
    "Humanoids should be tuned with a genetic algorithm running on the GPU overnight [4].",
    "The IMU uses GPS satellites to correct its heading every second [1].",
    "A PID controller needs a neural network to estimate the centre of mass [4].",
    "An IMU reports angular velocity and also measures the distance to obstacles with laser"
    " pulses [1].",
    "A lidar is accurate, but it needs a GPU and a neural network to produce its ranges [2].",
    "The bridge runs inside the robot's motor drivers and enforces torque limits [3].",
    "The proportional term is computed by a Kalman filter from camera images [4].",
    "Humanoid feet are usually fitted with lidars to measure the support polygon [5].",
]
