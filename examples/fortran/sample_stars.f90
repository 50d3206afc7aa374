! sample_stars.f90: examples/c/sample_stars.c in Fortran, through the gforge module (include/gforge.f90):
! draw stars for one galaxy from a flow that `gforge flow train` wrote, score them and write them out.
!
!   cargo build --release -p gforge-capi
!   gfortran -std=f2008 include/gforge.f90 examples/fortran/sample_stars.f90 -Ltarget/release -lgforge \
!       -Wl,-rpath,$PWD/target/release -o sample_stars_f
!   ./sample_stars_f flow.npz cpu g003 100000 7 stars.f32 logp.f64
!
! Arguments as the C example's: checkpoint, device, galaxy id, number of stars, seed, and optionally files
! for the stars (raw float32 [n, D], row-major) and their log q (raw float64 [n]): the same bytes as the C
! example and `gforge flow sample --galaxy ID --seed S` for the same seed.
program sample_stars
    use, intrinsic :: iso_c_binding
    use gforge
    implicit none
    type(c_ptr) :: device, flow, name
    integer(c_size_t) :: n, d, c, i, j
    integer(c_int64_t) :: seed
    real(c_double), allocatable :: cond(:), log_prob(:)
    real(c_float), allocatable :: stars(:, :)
    character(len=4096) :: model_path, spec, galaxy, arg, stars_path, logp_path
    character(len=:), allocatable :: line

    if (command_argument_count() < 5) then
        write (*, '(a)') 'usage: sample_stars_f FLOW.npz DEVICE GALAXY N SEED [STARS.f32 [LOGP.f64]]'
        stop 2
    end if
    call get_command_argument(1, model_path)
    call get_command_argument(2, spec)
    call get_command_argument(3, galaxy)
    call get_command_argument(4, arg)
    read (arg, *) n
    call get_command_argument(5, arg)
    read (arg, *) seed
    if (gf_abi_version() /= GF_ABI) error stop 'gforge.f90 and the library disagree on the ABI version'

    call check(gf_device_open(gf_c(spec), device), 'gf_device_open')
    call check(gf_device_name(device, name), 'gf_device_name')
    line = 'gforge ' // gf_f(gf_version()) // ' on ' // gf_f(name) // '; galaxy ' // trim(galaxy) // ':'
    call check(gf_flow_load(gf_c(model_path), device, flow), 'gf_flow_load')
    call gf_device_free(device)  ! the flow keeps its device (line holds a copy of its name)

    call check(gf_flow_dim(flow, d), 'gf_flow_dim')
    call check(gf_flow_cond_dim(flow, c), 'gf_flow_cond_dim')
    allocate(cond(c), stars(d, n), log_prob(n))
    call check(gf_flow_galaxy_condition(flow, gf_c(galaxy), cond, c), 'gf_flow_galaxy_condition')
    do j = 1, c
        call check(gf_flow_cond_name(flow, j - 1, name), 'gf_flow_cond_name')
        write (arg, '(g0)') cond(j)
        line = line // ' ' // gf_f(name) // '=' // trim(arg)
    end do
    write (*, '(a)') line

    ! stars(:, i) is star i: C's row-major [n, D] seen from Fortran.
    call check(gf_flow_sample(flow, n, cond, c, seed, stars, n * d), 'gf_flow_sample')
    call check(gf_flow_log_prob(flow, n, stars, n * d, cond, c, log_prob, n), 'gf_flow_log_prob')
    write (*, '(i0, a, f0.4, a)') n, ' stars, mean log q = ', sum(log_prob) / real(n, c_double), ' nats'
    do i = 1, d
        call check(gf_flow_column_name(flow, i - 1, name), 'gf_flow_column_name')
        write (*, '(2x, a, " mean ", g0.4)') gf_f(name), sum(real(stars(i, :), c_double)) / real(n, c_double)
    end do

    if (command_argument_count() >= 6) then
        call get_command_argument(6, stars_path)
        open (10, file=trim(stars_path), access='stream', form='unformatted', status='replace')
        write (10) stars
        close (10)
    end if
    if (command_argument_count() >= 7) then
        call get_command_argument(7, logp_path)
        open (11, file=trim(logp_path), access='stream', form='unformatted', status='replace')
        write (11) log_prob
        close (11)
    end if
    call gf_flow_free(flow)

contains

    ! Any failure: which call, its status and the library's message; then leave with status 1.
    subroutine check(status, call_name)
        integer(c_int), intent(in) :: status
        character(len=*), intent(in) :: call_name
        if (status /= GF_OK) then
            write (0, '(a)') call_name // ': ' // gf_f(gf_status_name(status)) // ': ' // gf_error()
            stop 1
        end if
    end subroutine

end program sample_stars
